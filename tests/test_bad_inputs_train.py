"""Bad input to `dusk pretrain / sft / dpo / sdpo` is refused in one line naming the culprit, before any training,
and nothing is written; the trained weights survive an output that cannot be written at the end; `--help` and the
usage lines say what the flags are."""

import json
import os
import re
import tempfile
from pathlib import Path

import pytest

from dusk.cli import main
from dusk.train import stage
from dusk.train.commands import STAGES
from dusk.train.config import DPOConfig, PretrainConfig, SDPOConfig, SFTConfig, flag_help
from tests.bad_input_helpers import assert_refused
from tests.train_fixtures import alpaca_pairs, preference_pairs, shakespeare_text, single_thread, write_jsonl  # noqa: F401

QUICK = ["--max-steps", "2", "--seq-len", "64", "--batch-size", "2", "--eval-size", "0", "--no-progress"]


@pytest.fixture
def place(tmp_path: Path, tiny_llama: Path) -> dict[str, str]:
    """The paths the rows' {placeholders} name: the model, small data files, broken configs and checkpoints."""
    (tmp_path / "exists").mkdir()
    (tmp_path / "exists" / "keep.txt").write_text("kept\n")
    (tmp_path / "a_file").write_text("not a directory\n")
    (tmp_path / "not_a_checkpoint").mkdir()
    (tmp_path / "broken_checkpoint").mkdir()
    (tmp_path / "broken_checkpoint" / "state.json").write_text("{step: 3")
    write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "Say hi.", "response": "Hi."}] * 4)
    write_jsonl(tmp_path / "prefs.jsonl", [{"prompt": "Say hi.", "chosen": "Hi.", "rejected": "No."}] * 2)
    write_jsonl(tmp_path / "text.jsonl", [{"text": "Some plain text to continue pretraining on."}])
    (tmp_path / "bad.yaml").write_text("model: [tiny\n")
    (tmp_path / "list.yaml").write_text("- model\n- data\n")
    (tmp_path / "unknown.yaml").write_text("model: m\ndata: d\nout: o\nlearnig_rate: 0.001\n")
    (tmp_path / "wrong_type.yaml").write_text(f"model: {tiny_llama}\ndata: d\nout: o\nmax_steps: ten\n")
    (tmp_path / "partial.yaml").write_text(f"model: {tiny_llama}\ndata: {tmp_path / 'pairs.jsonl'}\n")
    return {"model": str(tiny_llama), "tmp": str(tmp_path)}


def _sft(*extra: str) -> list[str]:
    return ["sft", "--model", "{model}", "--data", "{tmp}/pairs.jsonl", "--out", "{tmp}/out", *QUICK, *extra]


def _dpo(*extra: str, command: str = "dpo") -> list[str]:
    base = [command, "--model", "{model}", "--data", "{tmp}/prefs.jsonl", "--out", "{tmp}/out", *QUICK]
    return [*base, "--ref-cache", "{tmp}/ref-cache", *extra]


ROWS = [
    pytest.param(_sft("--max-steps", "0"), ["--max-steps", "0", "greater than or equal to 1"], id="max-steps-zero"),
    pytest.param(_sft("--max-steps", "-5"), ["--max-steps", "-5"], id="max-steps-negative"),
    pytest.param(_sft("--lr", "-0.001"), ["--lr", "greater than 0"], id="lr-negative"),
    pytest.param(_sft("--lr", "nan"), ["--lr", "nan", "finite"], id="lr-nan"),
    pytest.param(_sft("--lr", "inf"), ["--lr", "inf", "finite"], id="lr-inf"),
    pytest.param(_sft("--batch-size", "0"), ["--batch-size", "0"], id="batch-size-zero"),
    pytest.param(_sft("--seq-len", "0"), ["--seq-len", "0"], id="seq-len-zero"),
    pytest.param(_sft("--seq-len", "100000"), ["--seq-len 100000", "max_position_embeddings"], id="seq-len-too-long"),
    pytest.param(_sft("--grad-accum", "0"), ["--grad-accum", "0"], id="grad-accum-zero"),
    pytest.param(_sft("--adam-betas", "0.9", "2"), ["--adam-betas", "[0, 1)"], id="adam-beta-above-one"),
    pytest.param(_sft("--warmup-steps", "50"), ["--warmup-steps 50", "--max-steps 2"], id="warmup-past-max-steps"),
    pytest.param(_dpo("--beta", "-0.1"), ["--beta", "greater than 0"], id="dpo-beta-negative"),
    pytest.param(_dpo("--beta", "nan"), ["--beta", "finite"], id="dpo-beta-nan"),
    pytest.param(_dpo("--steps", "0", command="sdpo"), ["--steps", "0"], id="sdpo-steps-zero"),
    pytest.param(
        _dpo("--steps", "3", command="sdpo"), ["--steps 3", "2 training pair"], id="sdpo-more-steps-than-pairs"
    ),
    pytest.param(
        _dpo("--steps", "2", "--ref-model", "{model}", command="sdpo"),
        ["--ref-model", "sDPO"],
        id="sdpo-with-a-reference-model",
    ),
    pytest.param(
        [*_dpo(), "--data", "{tmp}/pairs.jsonl"],
        ["pairs.jsonl", "instruction records", "preference"],
        id="dpo-on-sft-data",
    ),
    pytest.param([*_sft(), "--data", "{tmp}/text.jsonl"], ["text.jsonl", "text records"], id="sft-on-text-data"),
    pytest.param([*_sft(), "--data", "no_such_dataset"], ["no_such_dataset", "unknown dataset"], id="unknown-dataset"),
    pytest.param(["sft", "--config", "{tmp}/bad.yaml"], ["bad.yaml", "not valid YAML", "line 2"], id="config-not-yaml"),
    pytest.param(["sft", "--config", "{tmp}/list.yaml"], ["list.yaml", "mapping"], id="config-not-a-mapping"),
    pytest.param(["sft", "--config", "{tmp}/none.yaml"], ["none.yaml", "cannot read"], id="config-missing"),
    pytest.param(["sft", "--config", "{tmp}/unknown.yaml"], ["learnig_rate", "unknown field"], id="config-unknown-key"),
    pytest.param(
        ["sft", "--config", "{tmp}/wrong_type.yaml"], ["max_steps", "'ten'", "integer"], id="config-field-wrong-type"
    ),
    pytest.param(
        ["sft", "--config", "{tmp}/partial.yaml"], ["missing required --out", "partial.yaml"], id="config-lacks-out"
    ),
    pytest.param(["sft", "--data", "d", "--out", "o"], ["missing required --model"], id="model-missing"),
    pytest.param(_sft("--resume"), ["--resume", "no checkpoint in"], id="resume-without-checkpoint"),
    pytest.param(
        _sft("--resume", "{tmp}/not_a_checkpoint"), ["not_a_checkpoint", "no state.json"], id="resume-not-ckpt"
    ),
    pytest.param(_sft("--resume", "{tmp}/gone"), ["--resume", "gone", "no such directory"], id="resume-missing-dir"),
    pytest.param(_sft("--resume", "{tmp}/broken_checkpoint"), ["state.json", "invalid JSON"], id="resume-broken-state"),
    pytest.param(_sft("--lora", "--lora-r", "0"), ["--lora-r", "0"], id="lora-rank-zero"),
    pytest.param(_sft("--lora", "--lora-dropout", "1"), ["--lora-dropout", "less than 1"], id="lora-dropout-one"),
    pytest.param(_sft("--lora", "--lora-targets", "qproj"), ["--lora-targets", "qproj", "q_proj"], id="lora-target"),
    pytest.param(_sft("--template", "bogus"), ["--template", "bogus"], id="template-unknown"),
    pytest.param([*_sft(), "--out", "{tmp}/exists"], ["exists", "already exists", "--force"], id="out-exists"),
    pytest.param([*_sft(), "--out", "{tmp}/a_file/out"], ["a_file", "not a directory"], id="out-under-a-file"),
]


@pytest.mark.parametrize(("argv", "culprits"), ROWS)
def test_bad_training_input_is_refused(
    argv: list[str], culprits: list[str], place: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = [arg.format(**place) for arg in argv]
    assert_refused(argv, culprits, capsys, watch=[tmp_path])


def test_an_unwritable_output_directory_is_refused_before_training(
    place, tmp_path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.access(locked, os.W_OK):  # root: permissions are not enforced, so the check is told what they say
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    try:
        argv = [arg.format(**place) for arg in _sft()] + ["--out", str(locked / "out")]
        assert_refused(argv, [str(locked), "not writable"], capsys, watch=[tmp_path])
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("also_work_dir", [False, True], ids=["kept-in-work-dir", "kept-in-temp-dir"])
def test_an_output_unwritable_at_the_end_keeps_the_trained_model(
    place, tmp_path, capsys, monkeypatch: pytest.MonkeyPatch, also_work_dir: bool
) -> None:
    """The output became unwritable during training: the error says where the trained weights are."""
    out = tmp_path / "out"
    blocked = {out, out.with_name("out.run") / stage.KEPT_NAME} if also_work_dir else {out}
    real_save = stage.save_trained

    def save(lm, peft_model, source_dir, where, force, files):  # noqa: ANN001, ANN202
        if Path(where) in blocked:
            raise PermissionError(13, "Permission denied", str(where))
        return real_save(lm, peft_model, source_dir, where, force, files)

    monkeypatch.setattr(stage, "save_trained", save)
    (tmp_path / "system-temp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "system-temp"))
    capsys.readouterr()
    code = main([arg.format(**place) for arg in _sft()])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("dusk: error:")]
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
    kept = Path(re.search(r"the trained model is kept in (\S+)", lines[0]).group(1))
    assert f"cannot write {out}" in lines[0] and "Permission denied" in lines[0]
    expected_root = tmp_path / "system-temp" if also_work_dir else out.with_name("out.run")
    assert kept.name == stage.KEPT_NAME and expected_root in kept.parents, kept
    record = json.loads((kept / "dusk_train.json").read_text())
    assert (kept / "model.safetensors").is_file() and record["steps"] == 2
    assert not out.exists()


@pytest.mark.parametrize("command", list(STAGES))
def test_help_shows_every_flag_description_intact(command: str, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # one line per flag: descriptions are compared whole
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())
    config_cls = {"pretrain": PretrainConfig, "sft": SFTConfig, "sdpo": SDPOConfig}.get(command, DPOConfig)
    for name, field in config_cls.model_fields.items():
        assert " ".join(flag_help(field).split()) in shown, f"--{name}: {field.description!r} garbled"
    assert "~30% slower (default: False)" in shown
    assert "'option_strings'" not in shown  # a bare % once spliced argparse's own parameters into the text


@pytest.mark.parametrize("command", list(STAGES))
def test_usage_shows_required_flags_as_required(command: str, capsys) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    usage = " ".join(capsys.readouterr().out.split("\n\n")[0].split())
    for flag in ("--model MODEL", "--data DATA", "--out OUT"):
        assert flag in usage and f"[{flag}]" not in usage, usage
    assert "[--config FILE.yaml]" in usage and "[--max-steps MAX_STEPS]" in usage


def test_a_config_file_still_gives_the_required_flags(place, tmp_path: Path, capsys) -> None:
    config = tmp_path / "sft.yaml"
    config.write_text(f"model: {place['model']}\ndata: {tmp_path / 'pairs.jsonl'}\nout: {tmp_path / 'from-yaml'}\n")
    assert main(["sft", "--config", str(config), *QUICK]) == 0
    assert (tmp_path / "from-yaml" / "model.safetensors").is_file()


def test_sdpo_says_which_directory_is_the_model(place, tmp_path: Path, capsys) -> None:
    write_jsonl(tmp_path / "prefs4.jsonl", [{"prompt": "Say hi.", "chosen": "Hi.", "rejected": "No."}] * 4)
    argv = [arg.format(**place) for arg in _dpo("--steps", "2", "--max-steps", "1", command="sdpo")]
    capsys.readouterr()
    assert main([*argv, "--data", str(tmp_path / "prefs4.jsonl")]) == 0
    assert f"the model is {tmp_path / 'out' / 'final'}" in capsys.readouterr().out
