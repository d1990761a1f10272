"""Bad input to the scale-out paths of issue 14 (devices, hub ids, hub datasets): one line, exit 2, nothing written."""

from pathlib import Path

import pytest
import torch
from bad_input_helpers import assert_refused
from eval_task_fixtures import real_data_dir

from dusk.contamination import run as contamination
from dusk.eval import run as eval_run


def _must_not_run(*_args, **_kwargs):
    raise AssertionError("a model was loaded before the device was checked")


@pytest.fixture
def places(tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("DUSK_DATA_DIR", str(real_data_dir()))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(eval_run, "load_engine", _must_not_run)
    monkeypatch.setattr(contamination, "load_pair", _must_not_run)
    return {"model": str(tiny_llama), "out": str(tmp_path / "out")}


def _cuda_devices(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


EVAL = ["eval", "{model}", "--tasks", "gsm8k", "--limit", "1", "--out", "{out}"]
CONTAMINATION = ["contamination", "{model}", "--reference", "{model}", "--tasks", "gsm8k", "--n", "1", "--out", "{out}"]
GENERATE = ["generate", "{model}", "hi"]

DEVICE_ROWS = [
    pytest.param(0, [*EVAL, "--device", "cuda"], ["--device cuda", "no CUDA device"], id="eval-cuda-without-cuda"),
    pytest.param(2, [*EVAL, "--device", "cuda:7"], ["--device cuda:7", "2 CUDA device"], id="eval-cuda-7-of-2"),
    pytest.param(0, [*EVAL, "--device", "gpu"], ["--device", "'gpu'", "cuda:N"], id="eval-device-syntax"),
    pytest.param(
        0, [*CONTAMINATION, "--device", "cuda"], ["--device cuda", "no CUDA"], id="contamination-cuda-without-cuda"
    ),
    pytest.param(
        1, [*CONTAMINATION, "--device", "cuda:7"], ["--device cuda:7", "1 CUDA device"], id="contamination-cuda-7"
    ),
    pytest.param(0, [*GENERATE, "--device", "cuda"], ["--device cuda", "no CUDA"], id="generate-cuda-without-cuda"),
    pytest.param(2, [*GENERATE, "--device", "cuda:7"], ["--device cuda:7", "2 CUDA"], id="generate-cuda-7-of-2"),
    pytest.param(0, [*EVAL, "--attention", "flash_attention_2"], ["--attention", "flash_attention_2"], id="eval-flash"),
]


@pytest.mark.parametrize(("cuda", "argv", "culprits"), DEVICE_ROWS)
def test_device_refusals(
    cuda: int,
    argv: list[str],
    culprits: list[str],
    places: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    _cuda_devices(monkeypatch, cuda)
    assert_refused([arg.format(**places) for arg in argv], culprits, capsys, watch=[tmp_path])
    assert not Path(places["out"]).exists()
