"""Bad launch settings of `dusk run` (a recipe's `launch:`, a stage's, --processes, --device-memory): each refused
before any work with one line naming the field or flag, exit code 2, and no run directory created. Among them a launch
asking for more GPUs than the machine has (torch.cuda monkeypatched). A rank killed mid-stage: test_runner_launch.py."""

from pathlib import Path

import pytest
import torch
import yaml
from bad_input_helpers import assert_refused


def recipe_file(
    tmp_path: Path, launch: object = None, stage_launch: object = None, merge_launch: object = None
) -> Path:
    """An upscale, an SFT from it and a merge; `launch` at the top, `stage_launch` on the SFT stage."""
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "Say hi.", "response": "Hi."}\n' * 4)
    sft = {"kind": "sft", "from": "dus", "data": str(data), "max_steps": 1, "seq_len": 32}
    merge = {"kind": "merge", "models": ["dus", "sft"], "method": "linear"}
    if stage_launch is not None:
        sft["launch"] = stage_launch
    if merge_launch is not None:
        merge["launch"] = merge_launch
    recipe = {"name": "bad-launch", "stages": {"dus": {"kind": "upscale", "model": "tiny-llama", "drop": 1},
                                               "sft": sft, "both": merge}}  # fmt: skip
    if launch is not None:
        recipe["launch"] = launch
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


BAD_LAUNCHES = [
    pytest.param({"launch": {"processes": 0}}, [], ["launch", "processes 0"], id="zero-processes"),
    pytest.param({"launch": {"processes": "two"}}, [], ["launch", "processes 'two'"], id="processes-not-a-number"),
    pytest.param({"launch": "fsdp"}, [], ["launch", "expected a mapping"], id="launch-not-a-mapping"),
    pytest.param({"launch": {"gpus": 2}}, [], ["launch", "gpus"], id="unknown-launch-key"),
    pytest.param({"launch": {"shard": "zero3"}}, [], ["launch", "shard 'zero3'"], id="unknown-shard"),
    pytest.param({"launch": {"device": "tpu"}}, [], ["launch", "device 'tpu'"], id="unknown-device"),
    pytest.param({"stage_launch": {"processes": -1}}, [], ["stage sft", "processes -1"], id="stage-negative-processes"),
    pytest.param({"merge_launch": {"processes": 2}}, [], ["stage both", "merge", "launch"], id="launch-on-a-merge"),
    pytest.param({}, ["--processes", "0"], ["--processes 0"], id="flag-zero-processes"),
    pytest.param({}, ["--processes", "many"], ["--processes", "many"], id="flag-processes-not-a-number"),
    pytest.param({}, ["--shard", "zero3"], ["--shard", "zero3"], id="flag-unknown-shard"),
    pytest.param(
        {}, ["--dry-run", "--device-memory", "lots"], ["--device-memory 'lots'", "80GiB"], id="memory-no-size"
    ),
    pytest.param({}, ["--dry-run", "--device-memory", "80"], ["--device-memory '80'", "give a unit"], id="memory-unit"),
    pytest.param({}, ["--device-memory", "80GiB"], ["--device-memory", "--dry-run"], id="memory-without-dry-run"),
]


@pytest.mark.parametrize(("recipe", "argv", "culprits"), BAD_LAUNCHES)
def test_bad_launch_is_refused(recipe: dict, argv: list[str], culprits: list[str], tmp_path: Path, capsys) -> None:
    path = recipe_file(tmp_path, **recipe)
    assert_refused(["run", str(path), "--run-dir", str(tmp_path / "run"), *argv], culprits, capsys, watch=[tmp_path])


def _gpus(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_more_processes_than_gpus_is_refused(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    _gpus(monkeypatch, 1)
    path = recipe_file(tmp_path)
    argv = ["run", str(path), "--run-dir", str(tmp_path / "run"), "--processes", "2"]
    line = assert_refused(argv, ["stage sft", "processes 2", "1 GPU"], capsys, watch=[tmp_path])
    assert "device: cpu" in line  # says what would make it run
    stage = recipe_file(tmp_path, stage_launch={"processes": 4, "device": "cuda"})
    assert_refused(["run", str(stage), "--run-dir", str(tmp_path / "run")], ["processes 4"], capsys, watch=[tmp_path])


def test_cuda_without_a_gpu_is_refused(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    _gpus(monkeypatch, 0)
    path = recipe_file(tmp_path, launch={"device": "cuda"})
    argv = ["run", str(path), "--run-dir", str(tmp_path / "run")]
    assert_refused(argv, ["stage sft", "device cuda", "no CUDA device"], capsys, watch=[tmp_path])


def test_cpu_processes_need_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The device check lets CPU launches and in-process stages through, whatever the GPU count."""
    from dusk.launch import Launch, check_devices

    _gpus(monkeypatch, 1)
    check_devices({"sft": ("sft", Launch(processes=8, device="cpu")), "ev": ("eval", Launch(processes=1))})
    _gpus(monkeypatch, 0)
    check_devices({"sft": ("sft", Launch(processes=8)), "merge": ("merge", None)})
