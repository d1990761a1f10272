"""`--device` / `--dtype` resolution (dusk.devices): auto picks CUDA when torch sees it, refusals name the device."""

import pytest
import torch

from dusk.devices import check_device_name, device_record, resolve_device, resolve_dtype
from dusk.errors import DuskError


def _fake_cuda(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


@pytest.mark.parametrize(
    ("count", "flag", "expected"),
    [(0, "auto", "cpu"), (2, "auto", "cuda:0"), (2, "cpu", "cpu"), (2, "cuda", "cuda:0"), (2, "cuda:1", "cuda:1")],
)
def test_resolve_device(monkeypatch: pytest.MonkeyPatch, count: int, flag: str, expected: str) -> None:
    _fake_cuda(monkeypatch, count)
    assert resolve_device(flag) == expected


def test_cuda_without_cuda_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cuda(monkeypatch, 0)
    with pytest.raises(DuskError, match="--device cuda: this machine has no CUDA device"):
        resolve_device("cuda")


def test_device_index_past_the_count_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cuda(monkeypatch, 2)
    with pytest.raises(DuskError, match=r"--device cuda:7: this machine has 2 CUDA device\(s\) \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:7")


@pytest.mark.parametrize("flag", ["gpu", "cuda:", "cuda:x", "tpu", ""])
def test_device_syntax(flag: str) -> None:
    with pytest.raises(ValueError, match="auto"):
        check_device_name(flag)
    with pytest.raises(DuskError, match="--device"):
        resolve_device(flag)


def test_resolve_dtype() -> None:
    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype("auto", "cuda:0") == "bfloat16"
    assert resolve_dtype("float16", "cpu") == "float16"
    with pytest.raises(DuskError, match="--dtype 'fp8'"):
        resolve_dtype("fp8", "cpu")


def test_device_record_on_cpu() -> None:
    record = device_record("cpu", "float32")
    assert record["device_name"] == "cpu" and record["torch_version"] == torch.__version__
    assert set(record) == {"device", "device_name", "dtype", "torch_version", "cuda_version"}


def test_fast_engine_refuses_attention_without_4d_masks() -> None:
    from types import SimpleNamespace

    from dusk.eval.engine import check_attention

    check_attention(SimpleNamespace(config=SimpleNamespace(_attn_implementation="sdpa")))
    with pytest.raises(DuskError, match="'flash_attention_2'.*sdpa and eager"):
        check_attention(SimpleNamespace(config=SimpleNamespace(_attn_implementation="flash_attention_2")))
