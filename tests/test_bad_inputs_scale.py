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


@pytest.fixture
def hub_places(places: dict[str, str], tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """An offline hub cache with a pickle-only model org/pickled and a dataset org/mini (train split only)."""
    import shutil

    cache = tmp_path / "hub"
    snapshot = cache / "models--org--pickled" / "snapshots" / "abc"
    shutil.copytree(tiny_llama, snapshot, ignore=shutil.ignore_patterns("*.safetensors"))
    (snapshot / "pytorch_model.bin").write_bytes(b"not loaded")
    data = cache / "datasets--org--mini" / "snapshots" / "abc"
    data.mkdir(parents=True)
    (data / "train.jsonl").write_text('{"instruction": "Say hi", "output": "hi"}\n')
    for storage in ("models--org--pickled", "datasets--org--mini"):
        (cache / storage / "refs").mkdir()
        (cache / storage / "refs" / "main").write_text("abc")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("DUSK_ALLOW_PICKLE", raising=False)
    return places


HUB_ROWS = [
    pytest.param(
        ["eval", "org/absent", "--tasks", "gsm8k", "--limit", "1", "--out", "{out}"],
        ["org/absent", "HF_HUB_OFFLINE", "hf download org/absent"],
        id="eval-hub-id-not-cached-offline",
    ),
    pytest.param(
        ["eval", "org/pickled", "--tasks", "gsm8k", "--limit", "1", "--out", "{out}"],
        ["org/pickled", "pytorch_model.bin", "--allow-pickle"],
        id="eval-pickle-only-repository",
    ),
    pytest.param(["data", "show", "org/mini@test"], ["org/mini@test", "'test'"], id="dataset-without-the-split"),
]


@pytest.mark.parametrize(("argv", "culprits"), HUB_ROWS)
def test_hub_refusals(
    argv: list[str], culprits: list[str], hub_places: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert_refused([arg.format(**hub_places) for arg in argv], culprits, capsys, watch=[tmp_path / "hub"])
    assert not Path(hub_places["out"]).exists()
