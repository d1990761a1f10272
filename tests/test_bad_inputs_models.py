"""Bad input to `dusk merge`, `dusk upscale` and `dusk info`: each is refused with one line naming the culprit, exit
code 2, no traceback, and nothing written. Also the regression tests of issue 13's model defects: non-finite merge
parameters and outputs, corrupt weight files, kill -9 leftovers, `auto_map` in merged configs, output permissions.
"""

import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from bad_input_helpers import assert_refused, run_dusk
from safetensors.torch import load_file, save_file

from dusk.cli import main
from dusk.errors import DuskError
from dusk.models.tiny import build_tiny_model
from dusk.models.upscale import check_drop

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Env:
    """Paths a row's command line is built from: two 4-layer Llamas, a Qwen2, and a scratch directory."""

    a: Path
    b: Path
    qwen: Path
    tmp: Path

    @property
    def out(self) -> str:
        return str(self.tmp / "out")

    def file(self, name: str, text: str) -> str:
        path = self.tmp / name
        path.write_text(text)
        return str(path)

    def edited(self, name: str, edit: Callable[[Path], None]) -> str:
        """A copy of model a, changed by `edit(copy)`."""
        copy = self.tmp / name
        shutil.copytree(self.a, copy)
        edit(copy)
        return str(copy)


@pytest.fixture
def env(tiny_llama_4: Path, tiny_llama_4b: Path, tiny_qwen2_4: Path, tmp_path: Path) -> Env:
    return Env(tiny_llama_4, tiny_llama_4b, tiny_qwen2_4, tmp_path)


def _linear_yaml(e: Env, a_params: str = "{weight: 1}", extra: str = "", b_weight: str = "1") -> str:
    """A linear merge config of models a and b (task arithmetic when `extra` names a base_model)."""
    method = "task_arithmetic" if "base_model" in extra else "linear"
    text = f"merge_method: {method}\nmodels:\n  - model: {e.a}\n    parameters: {a_params}\n"
    return text + f"  - model: {e.b}\n    parameters: {{weight: {b_weight}}}\n" + extra


def _one_slice(e: Env, start: int, end: int) -> str:
    return f"slices:\n  - sources: [{{model: {e.a}, layer_range: [{start}, {end}]}}]\n"


def _config(e: Env, text: str) -> list[str]:
    return ["merge", e.file("m.yaml", text), "--out", e.out]


def _slices(e: Env, text: str) -> list[str]:
    return ["upscale", "--slices", e.file("s.yaml", text), "--out", e.out]


def _big_value(model: Path) -> None:
    """One weight of 1e6: finite in float32, infinite once cast to float16."""
    tensors = load_file(model / "model.safetensors")
    tensors["model.norm.weight"][0] = 1e6
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})


def _merge(e: Env, *flags: str) -> list[str]:
    return ["merge", str(e.a), str(e.b), *flags, "--out", e.out]


def _out_is_a_file(e: Env) -> list[str]:
    e.file("out", "a file, not a model directory")
    return _merge(e, "--force")


def _out_under_a_file(e: Env) -> list[str]:
    notes = e.file("notes.txt", "a file")
    return ["merge", str(e.a), str(e.b), "--out", str(Path(notes) / "out")]


BAD_INPUTS = [
    # merge: parameters (defect 1: NaN/inf refused up front, naming the model and the parameter)
    pytest.param(lambda e: _merge(e, "--weights", "nan,1"), ["weight", "nan", "tiny-llama-4"], id="merge-weight-nan"),
    pytest.param(
        lambda e: _config(e, _linear_yaml(e, "{weight: .inf}")),
        ["m.yaml", "weight", "inf", "tiny-llama-4"],
        id="merge-yaml-weight-inf",
    ),
    pytest.param(
        lambda e: _config(e, _linear_yaml(e, "{weight: .nan}")),
        ["m.yaml", "weight", "nan"],
        id="merge-yaml-weight-nan",
    ),
    pytest.param(
        lambda e: _merge(e, "--method", "ties", "--base", str(e.a), "--density", "nan"),
        ["density", "nan"],
        id="merge-density-nan",
    ),
    pytest.param(
        lambda e: _merge(e, "--method", "slerp", "--t", "1.5"), ["t 1.5", "[0, 1]"], id="merge-t-out-of-range"
    ),
    pytest.param(lambda e: _merge(e, "--method", "slerp", "--t", "inf"), ["t inf", "finite"], id="merge-t-inf"),
    pytest.param(
        lambda e: _config(e, _linear_yaml(e, extra=f"base_model: {e.a}\nparameters: {{lambda: .nan}}\n")),
        ["lambda", "nan"],
        id="merge-lambda-nan",
    ),
    # merge: a result that is not finite although the inputs are (defect 1, output check)
    pytest.param(
        lambda e: _config(e, _linear_yaml(e, "{weight: 3e38}", "parameters: {normalize: false}\n", "3e38")),
        ["tensor model.", "nan or infinite"],
        id="merge-output-overflows",
    ),
    # merge: the command line
    pytest.param(lambda e: _merge(e, "--method", "average"), ["average", "linear"], id="merge-unknown-method"),
    pytest.param(
        lambda e: _merge(e, "--weights", "0.5"), ["--weights", "1 value", "2 model"], id="merge-weights-count"
    ),
    pytest.param(lambda e: _merge(e, "--weights", ""), ["--weights", "''"], id="merge-weights-empty"),
    pytest.param(lambda e: _merge(e, "--weights", "half,half"), ["--weights", "half,half"], id="merge-weights-text"),
    pytest.param(lambda e: _merge(e, "--dtype", "int8"), ["--dtype", "int8"], id="merge-dtype-unknown"),
    pytest.param(lambda e: _merge(e, "--shard-size", "2XB"), ["shard size", "2XB"], id="merge-shard-size-text"),
    pytest.param(lambda e: _merge(e, "--shard-size", "0"), ["shard size", "'0'"], id="merge-shard-size-zero"),
    pytest.param(lambda e: _merge(e, "--seed", "-1"), ["seed", "-1"], id="merge-seed-negative"),
    pytest.param(lambda e: _merge(e, "--method", "ties"), ["ties", "base_model", "--base"], id="merge-missing-base"),
    pytest.param(lambda e: _merge(e, "--method", "slerp"), ["slerp", "--t"], id="merge-slerp-without-t"),
    pytest.param(
        lambda e: ["merge", str(e.a), str(e.qwen), "--out", e.out], ["tiny-qwen2-4", "architecture"], id="merge-archs"
    ),
    # merge: the config file
    pytest.param(
        lambda e: _config(e, _linear_yaml(e, extra="wieghts: 1\n")),
        ["m.yaml", "unknown field 'wieghts'"],
        id="merge-yaml-unknown-key",
    ),
    pytest.param(
        lambda e: _config(e, "merge_method: linear\nmodels: [\n"),
        ["m.yaml", "not valid yaml"],
        id="merge-yaml-syntax",
    ),
    pytest.param(lambda e: _config(e, "- linear\n"), ["m.yaml", "mapping"], id="merge-yaml-list"),
    pytest.param(
        lambda e: _config(e, "merge_method: linear\n" + _one_slice(e, 3, 1)),
        ["layer_range [3, 1)", "4 layers"],
        id="merge-slice-reversed",
    ),
    # merge: the output
    pytest.param(_out_is_a_file, ["out", "not a directory"], id="merge-out-file"),
    pytest.param(_out_under_a_file, ["notes.txt", "not a directory"], id="merge-out-under-file"),
    pytest.param(lambda e: _merge(e, "--force")[:-1] + [str(e.a)], ["replace the input"], id="merge-out-is-input"),
    # upscale (defect 6: --drop checked against the layer count before any write)
    pytest.param(lambda e: ["upscale", str(e.a), "--drop", "4", "--out", e.out], ["--drop 4", "4 layers"], id="drop-n"),
    pytest.param(lambda e: ["upscale", str(e.a), "--drop", "9", "--out", e.out], ["--drop 9", "4 layers"], id="drop-9"),
    pytest.param(
        lambda e: ["upscale", str(e.a), "--drop", "-1", "--out", e.out], ["--drop -1", "4 layers"], id="drop-negative"
    ),
    pytest.param(
        lambda e: _slices(e, "slices: [\n"),
        ["s.yaml", "not valid yaml"],
        id="upscale-slices-syntax",
    ),
    pytest.param(
        lambda e: _slices(e, "[1, 2]\n"),
        ["s.yaml", "mapping"],
        id="upscale-slices-list",
    ),
    pytest.param(
        lambda e: _slices(e, _one_slice(e, 3, 1)),
        ["layer_range [3, 1)", "reversed"],
        id="upscale-slices-reversed",
    ),
    pytest.param(
        lambda e: _slices(e, _one_slice(e, 0, 9)),
        ["layer_range [0, 9)", "4 layers"],
        id="upscale-slices-out-of-range",
    ),
    pytest.param(
        lambda e: ["upscale", str(e.a), "--drop", "1", "--shard-size", "big", "--out", e.out],
        ["shard size", "big"],
        id="upscale-shard-size",
    ),
    pytest.param(
        lambda e: ["upscale", str(e.a), "--drop", "1", "--force", "--out", str(e.a)],
        ["replace the input"],
        id="upscale-out-is-input",
    ),
    pytest.param(
        lambda e: ["upscale", e.edited("big", _big_value), "--drop", "1", "--dtype", "float16", "--out", e.out],
        ["tensor model.norm.weight", "float16"],
        id="upscale-float16-overflow",
    ),
]


@pytest.mark.parametrize(("argv", "culprits"), BAD_INPUTS)
def test_bad_input_is_refused(env: Env, argv, culprits, capsys: pytest.CaptureFixture) -> None:
    assert_refused(argv(env), culprits, capsys, watch=[env.tmp, env.a, env.b])


# Corrupt weight files (defect 2): each is refused by `dusk info`, `dusk merge` and `dusk upscale`.


def _rewrite(model: Path, make: Callable[[bytes, int, dict], bytes]) -> None:
    """Replace model.safetensors by make(original bytes, header length, header)."""
    path = model / "model.safetensors"
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    path.write_bytes(make(data, length, json.loads(data[8 : 8 + length])))


def _with_header(data: bytes, length: int, header: dict) -> bytes:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data[8 + length :]


def _edit_first_tensor(**fields) -> Callable[[Path], None]:
    def edit(model: Path) -> None:
        def make(data: bytes, length: int, header: dict) -> bytes:
            name = next(key for key in header if key != "__metadata__")
            header[name] = dict(header[name], **fields)
            return _with_header(data, length, header)

        _rewrite(model, make)

    return edit


def _sharded(weight_map_text: Callable[[list[str]], str]) -> Callable[[Path], None]:
    def edit(model: Path) -> None:
        names = list(load_file(model / "model.safetensors"))
        (model / "model.safetensors").rename(model / "model-00001-of-00002.safetensors")
        (model / "model.safetensors.index.json").write_text(weight_map_text(names))

    return edit


def _two_shards(names: list[str]) -> str:
    shards = {name: f"model-0000{1 + i % 2}-of-00002.safetensors" for i, name in enumerate(names)}
    return json.dumps({"metadata": {}, "weight_map": shards})


CORRUPTIONS = [
    pytest.param(lambda m: _rewrite(m, lambda d, n, h: d[: len(d) // 2]), ["model.safetensors", "outside"], id="cut"),
    pytest.param(lambda m: _rewrite(m, lambda d, n, h: b""), ["model.safetensors", "0 byte"], id="zero-length"),
    pytest.param(
        lambda m: _rewrite(m, lambda d, n, h: struct.pack("<Q", 2**63) + d[8:]),
        ["header length", str(2**63)],
        id="2^63",
    ),
    pytest.param(
        lambda m: _rewrite(m, lambda d, n, h: struct.pack("<Q", len(d)) + d[8:]),
        ["model.safetensors", "header length"],
        id="header-beyond-file",
    ),
    pytest.param(
        lambda m: _rewrite(m, lambda d, n, h: struct.pack("<Q", 8) + b"notjson!" + d[16:]),
        ["model.safetensors", "not json"],
        id="header-not-json",
    ),
    pytest.param(
        lambda m: _rewrite(m, lambda d, n, h: struct.pack("<Q", 8) + b"[1, 2]  " + d[16:]),
        ["model.safetensors", "not an object"],
        id="header-not-object",
    ),
    pytest.param(
        _edit_first_tensor(data_offsets=[10**12, 10**12 + 4]), ["model.embed_tokens.weight", "outside"], id="offsets"
    ),
    pytest.param(_edit_first_tensor(dtype="F99"), ["model.embed_tokens.weight", "F99"], id="bad-dtype"),
    pytest.param(_edit_first_tensor(shape=[2, 2]), ["model.embed_tokens.weight", "shape [2, 2]"], id="shape-vs-bytes"),
    pytest.param(_sharded(_two_shards), ["index.json", "model-00002-of-00002.safetensors"], id="index-missing-shard"),
    pytest.param(_sharded(lambda names: "{not json"), ["index.json", "not json"], id="index-not-json"),
    pytest.param(
        lambda m: (m / "config.json").write_text("[1]"), ["config.json", "JSON object"], id="config-not-object"
    ),
]


@pytest.mark.parametrize("command", ["info", "merge", "upscale"])
@pytest.mark.parametrize(("corrupt", "culprits"), CORRUPTIONS)
def test_corrupt_weights_are_refused(env: Env, command: str, corrupt, culprits, capsys) -> None:
    broken = env.edited("broken", corrupt)
    argv = {
        "info": ["info", broken],
        "merge": ["merge", str(env.a), broken, "--out", env.out],
        "upscale": ["upscale", broken, "--drop", "1", "--out", env.out],
    }[command]
    assert_refused(argv, [*culprits, "broken"], capsys, watch=[env.tmp])


def test_info_refuses_a_tokenizer_config_that_is_not_json(env: Env, capsys) -> None:
    broken = env.edited("broken", lambda m: (m / "tokenizer_config.json").write_text("{oops"))
    assert_refused(["info", broken], ["broken/tokenizer_config.json", "json"], capsys, watch=[env.tmp])


def test_non_finite_inputs_may_stay_non_finite(env: Env) -> None:
    """The output check refuses new NaN/inf only: an input that already holds NaN is merged as before."""

    def poison(model: Path) -> None:
        tensors = load_file(model / "model.safetensors")
        tensors["model.norm.weight"][0] = float("nan")
        save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})

    assert main(["merge", env.edited("nan", poison), str(env.b), "--out", env.out]) == 0
    assert torch.isnan(load_file(Path(env.out) / "model.safetensors")["model.norm.weight"][0])


# check_drop (defect 6), also called by the recipe validator.


@pytest.mark.parametrize(("layers", "drop"), [(4, 4), (4, 5), (4, -1), (1, 1)])
def test_check_drop_refuses(layers: int, drop: int) -> None:
    with pytest.raises(DuskError, match=rf"--drop {drop}: .*{layers} layers"):
        check_drop(layers, drop)


@pytest.mark.parametrize(("layers", "drop"), [(4, 0), (4, 3), (32, 8)])
def test_check_drop_accepts(layers: int, drop: int) -> None:
    check_drop(layers, drop)


# auto_map (defect 4): remote-code pointers are dropped from outputs, with a warning naming them.


def _with_auto_map(model: Path) -> None:
    config = json.loads((model / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    (model / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("command", ["merge", "upscale"])
def test_auto_map_is_dropped_with_a_warning(env: Env, command: str, caplog: pytest.LogCaptureFixture) -> None:
    remote = env.edited("remote", _with_auto_map)
    argv = {
        "merge": ["merge", remote, str(env.b), "--out", env.out],
        "upscale": ["upscale", remote, "--drop", "1", "--out", env.out],
    }[command]
    assert main(argv) == 0
    assert "auto_map" not in json.loads((Path(env.out) / "config.json").read_text())
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("auto_map" in w and "modeling_evil.EvilForCausalLM" in w for w in warnings), warnings


# Permissions (defect 5): outputs follow the umask, not mkdtemp's 0700.


@pytest.mark.parametrize("command", ["merge", "upscale"])
def test_outputs_follow_the_umask(env: Env, command: str) -> None:
    argv = {
        "merge": ["merge", str(env.a), str(env.b), "--out", env.out, "--shard-size", "300KB"],
        "upscale": ["upscale", str(env.a), "--drop", "1", "--out", env.out],
    }[command]
    previous = os.umask(0o022)
    try:
        assert main(argv) == 0
    finally:
        os.umask(previous)
    out = Path(env.out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    files = list(out.iterdir())
    assert len(files) > 3
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in files} == {path.name: 0o644 for path in files}


# kill -9 (defect 3): the hidden temporary directory a killed run leaves is removed by the next run.


@pytest.fixture(scope="module")
def wide_models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two 8-layer Llamas of hidden size 512 (about 75 MB each), so a merge or upscale runs long enough to kill."""
    root = tmp_path_factory.mktemp("wide")
    return [build_tiny_model(root / f"w{i}", "llama", num_layers=8, hidden=512, seed=20 + i) for i in range(2)]


def _kill_once_the_temp_appears(argv: list[str], out: Path) -> Path:
    """Start `python -m dusk ARGV`, kill -9 it as soon as its temporary output directory exists; return that."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dusk", *argv], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    prefix = f".{out.name}.tmp-{proc.pid}-"
    deadline = time.monotonic() + 300
    try:
        while not (temps := [p for p in out.parent.iterdir() if p.name.startswith(prefix)]):
            assert proc.poll() is None, f"dusk ended before it could be killed: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "no temporary output directory appeared"
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    return temps[0]


@pytest.mark.parametrize("command", ["merge", "upscale"])
def test_kill_9_leftovers_are_cleaned_by_the_next_run(
    wide_models: list[Path], tmp_path: Path, command: str
) -> None:  # fmt: skip
    out = tmp_path / "out"
    argv = {
        "merge": ["merge", str(wide_models[0]), str(wide_models[1]), "--out", str(out)],
        "upscale": ["upscale", str(wide_models[0]), "--drop", "2", "--out", str(out)],
    }[command]
    stale = _kill_once_the_temp_appears(argv, out)
    assert stale.is_dir() and not out.exists()  # killed: no complete-looking output, only the hidden temporary
    done = run_dusk(argv, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert not stale.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
