"""Bad input to model resolution and DUS: clear errors, and nothing half-written left behind."""

import json
from pathlib import Path

import pytest
from safetensors.torch import save_file

from dusk.cli import main
from dusk.errors import DuskError
from dusk.models import upscale
from dusk.models.io import resolve_model
from dusk.models.tiny import build_tiny_model


def _slices(*ranges):
    return [upscale.Slice(sources=[upscale.SliceSource(model=str(m), layer_range=(a, b))]) for m, a, b in ranges]


def test_unknown_model_name_lists_known_ones() -> None:
    with pytest.raises(DuskError, match="unknown model name 'nope'.*smollm2-135m"):
        resolve_model("nope")


def test_path_that_is_neither_model_dir_nor_gguf(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(DuskError, match="neither a model directory"):
        resolve_model(tmp_path / "weights.bin")
    with pytest.raises(DuskError, match="no config.json"):
        resolve_model(tmp_path)


def test_unreadable_gguf_is_named(tmp_path: Path) -> None:
    (tmp_path / "broken.gguf").write_bytes(b"not a gguf file")
    with pytest.raises(DuskError, match="broken.gguf: transformers could not load"):
        resolve_model(tmp_path / "broken.gguf")


@pytest.mark.parametrize("drop", [-1, 4, 9])
def test_drop_outside_range(tiny_llama_4: Path, tmp_path: Path, drop: int) -> None:
    with pytest.raises(DuskError, match=r"--drop .*must be in \[0, 4\)"):
        upscale.config_for_drop(str(tiny_llama_4), drop, tmp_path / "out")


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [(0, 5, "out of range"), (2, 2, "empty range"), (3, 1, "reversed range"), (-1, 2, "out of range")],
)
def test_bad_slice_ranges(tiny_llama_4: Path, tmp_path: Path, start: int, end: int, message: str) -> None:
    with pytest.raises(DuskError, match=message):
        upscale.run(upscale.UpscaleConfig(slices=_slices((tiny_llama_4, start, end)), out=tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_sources_of_different_hidden_size_or_architecture(
    tiny_llama_4: Path, tiny_qwen2_4: Path, tmp_path: Path
) -> None:
    narrow = build_tiny_model(tmp_path / "narrow", "llama", num_layers=4, hidden=32)
    with pytest.raises(DuskError, match="hidden_size differs"):
        upscale.plan_upscale(_slices((tiny_llama_4, 0, 2), (narrow, 2, 4)))
    with pytest.raises(DuskError, match="model_type differs"):
        upscale.plan_upscale(_slices((tiny_llama_4, 0, 2), (tiny_qwen2_4, 2, 4)))


def test_unsupported_architecture_names_its_model_type(tmp_path: Path) -> None:
    import torch

    model = tmp_path / "t5ish"
    model.mkdir()
    (model / "config.json").write_text(
        json.dumps({"model_type": "t5", "is_encoder_decoder": True, "num_hidden_layers": 2})
    )
    save_file({"encoder.block.0.weight": torch.zeros(2)}, model / "model.safetensors")
    with pytest.raises(DuskError, match="'t5' is an encoder-decoder"):
        upscale.plan_upscale(_slices((model, 0, 1)))
    (model / "config.json").write_text(json.dumps({"model_type": "rwkv", "num_hidden_layers": 1}))
    with pytest.raises(DuskError, match="'rwkv' is not supported"):
        upscale.plan_upscale(_slices((model, 0, 1)))


def test_existing_output_needs_force(tiny_llama_4: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    cfg = upscale.config_for_drop(str(tiny_llama_4), 1, out)
    with pytest.raises(DuskError, match="already exists.*--force"):
        upscale.run(cfg)
    assert (out / "keep.txt").read_text() == "mine"
    upscale.run(cfg.model_copy(update={"force": True}))
    assert not (out / "keep.txt").exists() and (out / "config.json").exists()


def test_interrupted_upscale_leaves_nothing(tiny_llama_4: Path, tmp_path: Path, monkeypatch) -> None:
    from dusk.models import safetensors_io

    calls = {"n": 0}
    original = safetensors_io.ModelTensors.read_bytes

    def failing_read(self, name):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original(self, name)

    monkeypatch.setattr(safetensors_io.ModelTensors, "read_bytes", failing_read)
    with pytest.raises(KeyboardInterrupt):
        upscale.run(upscale.config_for_drop(str(tiny_llama_4), 1, tmp_path / "out"))
    assert list(tmp_path.iterdir()) == []


def test_slices_file_errors(tiny_llama_4: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("slices: [\n  - sources: [{model: x")
    with pytest.raises(DuskError, match=r"bad.yaml:\d+:\d+: not valid YAML"):
        upscale.load_slices_file(bad, tmp_path / "out")
    bad.write_text(
        f"slices:\n  - sources: [{{model: {tiny_llama_4}, layer_range: [0, 2]}}, "
        f"{{model: {tiny_llama_4}, layer_range: [2, 4]}}]\n"
    )
    with pytest.raises(DuskError, match="exactly one source"):
        upscale.load_slices_file(bad, tmp_path / "out")
    bad.write_text("merge_method: ties\nslices: []\n")
    with pytest.raises(DuskError, match="use `dusk merge`"):
        upscale.load_slices_file(bad, tmp_path / "out")


def test_cli_reports_errors_without_traceback(tiny_llama_4: Path, tmp_path: Path, capsys) -> None:
    assert main(["upscale", str(tiny_llama_4), "--drop", "7", "--out", str(tmp_path / "o")]) == 2
    assert "must be in [0, 4)" in capsys.readouterr().err
    assert main(["upscale", "--out", str(tmp_path / "o")]) == 2
    assert "either MODEL --drop M" in capsys.readouterr().err
