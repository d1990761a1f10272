"""Bad input to the DUS forms beyond `--drop m` (issue 16): layer scan, `--drop auto --layers L`, `--expand every:K`,
`--blend K`. Each row is refused with one line naming the culprit, exit code 2, no traceback, nothing written.
"""

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from bad_input_helpers import assert_refused
from opt_fixtures import tiny_opt


@dataclass
class Env:
    """A 4-layer tiny Llama, a second one, and a scratch directory."""

    a: Path
    b: Path
    tmp: Path

    @property
    def out(self) -> str:
        return str(self.tmp / "out")

    def up(self, *flags: str) -> list[str]:
        return ["upscale", str(self.a), *flags, "--out", self.out]

    def slices(self, first: tuple[Path, int, int], second: tuple[Path, int, int], *flags: str) -> list[str]:
        text = "slices:\n" + "".join(
            f"  - sources: [{{model: {model}, layer_range: [{start}, {end}]}}]\n"
            for model, start, end in (first, second)
        )
        path = self.tmp / "s.yaml"
        path.write_text(text)
        return ["upscale", "--slices", str(path), *flags, "--out", self.out]

    def with_config(self, name: str, **changes) -> Path:
        copy = self.tmp / name
        shutil.copytree(self.a, copy)
        config = json.loads((copy / "config.json").read_text())
        (copy / "config.json").write_text(json.dumps({**config, **changes}))
        return copy


@pytest.fixture
def env(tiny_llama_4: Path, tiny_llama_4b: Path, tmp_path: Path) -> Env:
    return Env(tiny_llama_4, tiny_llama_4b, tmp_path)


def _post_norm_opt(e: Env) -> list[str]:
    tiny_opt(e.tmp / "opt-350m-like", pre_norm=False)
    return ["upscale", str(e.tmp / "opt-350m-like"), "--expand", "every:1", "--out", e.out]


def _scan_out_exists(e: Env) -> list[str]:
    (e.tmp / "scan.json").write_text("{}")
    return ["upscale", str(e.a), "--scan", "--out", str(e.tmp / "scan.json")]


def _pretrain(e: Env, model: str, *flags: str) -> list[str]:
    data = e.tmp / "text.jsonl"
    data.write_text(json.dumps({"text": "Some words to train on. " * 50}) + "\n")
    return ["pretrain", "--model", model, "--data", str(data), "--out", e.out, "--no-progress", *flags]


BAD_INPUTS: list = [
    # --expand every:K
    pytest.param(lambda e: e.up("--expand", "every:0"), ["--expand every:0", "[1, 4]"], id="expand-k-zero"),
    pytest.param(lambda e: e.up("--expand", "every:-2"), ["--expand every:-2", "[1, 4]"], id="expand-k-negative"),
    pytest.param(lambda e: e.up("--expand", "every:5"), ["every:5", "4 layers", "nothing"], id="expand-k-above-n"),
    pytest.param(
        lambda e: e.up("--drop", "1", "--expand", "every:7"), ["every:7", "6 layers"], id="expand-k-above-dus"
    ),
    pytest.param(lambda e: e.up("--expand", "2"), ["--expand '2'", "every:K"], id="expand-no-every"),
    pytest.param(lambda e: e.up("--expand", "each:2"), ["each:2", "every:K"], id="expand-wrong-word"),
    pytest.param(_post_norm_opt, ["opt", "do_layer_norm_before", "not the identity"], id="expand-post-norm-arch"),
    pytest.param(
        lambda e: ["upscale", str(e.with_config("m", model_type="mystery")), "--expand", "every:2", "--out", e.out],
        ["'mystery'", "expansion table"],
        id="expand-unknown-arch",
    ),
    pytest.param(lambda e: ["upscale", "--expand", "every:2", "--out", e.out], "needs a model", id="expand-no-model"),
    # --drop auto --layers L
    pytest.param(lambda e: e.up("--drop", "auto"), ["--drop auto", "--layers"], id="auto-without-layers"),
    pytest.param(lambda e: e.up("--drop", "auto", "--layers", "9"), ["--layers 9", "2 to 8"], id="layers-above-2n"),
    pytest.param(lambda e: e.up("--drop", "auto", "--layers", "1"), ["--layers 1", "2 to 8"], id="layers-one"),
    pytest.param(
        lambda e: e.up("--drop", "1", "--layers", "6"), ["--layers 6", "--drop auto"], id="layers-without-auto"
    ),
    pytest.param(lambda e: e.up("--drop", "half"), ["--drop", "'half'", "auto"], id="drop-not-a-number"),
    pytest.param(
        lambda e: e.up("--drop", "auto", "--layers", "6", "--data", "no_such_set"),
        ["--data no_such_set", "unknown dataset"],
        id="auto-unknown-data",
    ),
    pytest.param(
        lambda e: e.up("--drop", "auto", "--layers", "6", "--samples", "0"), "--samples 0", id="auto-zero-samples"
    ),
    # --blend K
    pytest.param(
        lambda e: e.up("--drop", "1", "--blend", "2"), ["--blend 2", "overlap", "at most 1"], id="blend-too-big"
    ),
    pytest.param(lambda e: e.up("--drop", "1", "--blend", "0"), ["--blend 0", "at least 1"], id="blend-zero"),
    pytest.param(lambda e: e.up("--expand", "every:2", "--blend", "1"), ["--blend 1", "--drop"], id="blend-no-seam"),
    pytest.param(
        lambda e: e.slices((e.a, 0, 2), (e.a, 2, 4), "--blend", "1"),
        ["--blend 1", "do not overlap"],
        id="blend-no-overlap",
    ),
    pytest.param(
        lambda e: e.slices((e.a, 0, 3), (e.b, 1, 4), "--blend", "1"), ["--blend 1", "one model"], id="blend-two-models"
    ),
    # --scan
    pytest.param(lambda e: e.up("--scan", "--samples", "0"), "--samples 0", id="scan-zero-samples"),
    pytest.param(
        lambda e: e.up("--scan", "--data", "no_such_set"),
        ["--data no_such_set", "unknown dataset"],
        id="scan-unknown-data",
    ),
    pytest.param(lambda e: e.up("--scan", "--drop", "1"), ["--scan", "--drop"], id="scan-with-drop"),
    pytest.param(_scan_out_exists, ["scan.json", "already exists"], id="scan-out-exists"),
    pytest.param(lambda e: ["upscale", "--scan", "--out", e.out], ["--scan", "model"], id="scan-no-model"),
    # --trainable (pretrain and SFT)
    pytest.param(
        lambda e: _pretrain(e, str(e.a), "--trainable", "top"),
        ["--trainable 'top'", "layers:A-B"],
        id="trainable-unknown",
    ),
    pytest.param(
        lambda e: _pretrain(e, str(e.a), "--trainable", "new"),
        ["--trainable new", "no dusk_upscale.json", "tiny-llama-4"],
        id="trainable-new-without-record",
    ),
    pytest.param(
        lambda e: _pretrain(e, "tiny-llama", "--trainable", "new"),
        ["--trainable new", "tiny-llama", "built-in"],
        id="trainable-new-builtin",
    ),
    pytest.param(
        lambda e: _pretrain(e, str(e.a), "--trainable", "layers:2-4"),
        ["--trainable layers:2-4", "layers 0 to 3"],
        id="trainable-layers-out-of-range",
    ),
    pytest.param(
        lambda e: _pretrain(e, str(e.a), "--trainable", "layers:1-1", "--lora"),
        ["--trainable layers:1-1", "--lora"],
        id="trainable-with-lora",
    ),
]


@pytest.mark.parametrize(("argv", "culprits"), BAD_INPUTS)
def test_refused(argv: Callable[[Env], list[str]], culprits: str | list[str], env: Env, capsys) -> None:
    assert_refused(argv(env), culprits, capsys, watch=[env.tmp, env.a, env.b])
    assert not Path(env.out).exists()
