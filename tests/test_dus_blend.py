"""Seam blending (--blend K): the 2K layers around the seam are the documented cross-fade of the two copies."""

import json
from pathlib import Path

import pytest
import torch

from dusk.errors import DuskError
from dusk.models import upscale
from dusk.models.dus_blend import max_blend
from dusk.models.safetensors_io import ModelTensors
from dusk.models.tiny import build_tiny_model


@pytest.fixture(scope="module")
def tiny_llama_8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama-8", "llama", num_layers=8, seed=5)


def test_blend_window_is_the_cross_fade(tiny_llama_8: Path, tmp_path: Path) -> None:
    out = upscale.run(upscale.config_for_model(str(tiny_llama_8), tmp_path / "b", drop=2, blend=2))
    src, got = ModelTensors(tiny_llama_8), ModelTensors(out)
    name = "model.layers.{}.mlp.up_proj.weight"
    # [0, 6) + [2, 8): seam at 6, shift 4; window positions 4..7 with t = 1/5 .. 4/5
    for index, p in enumerate(range(4, 8)):
        t = (index + 1) / 5
        want = (1 - t) * src.read(name.format(p)) + t * src.read(name.format(p - 4))
        torch.testing.assert_close(got.read(name.format(p)), want, rtol=0, atol=1e-7)
    for p, depth in [(3, 3), (8, 4), (11, 7)]:  # outside the window: plain copies, bit for bit
        assert torch.equal(got.read(name.format(p)), src.read(name.format(depth)))
    record = json.loads((out / "dusk_upscale.json").read_text())
    assert record["method"] == "dus-blend" and [w["layer"] for w in record["blended_layers"]] == [4, 5, 6, 7]
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 12


def test_max_blend_for_solar_is_m() -> None:
    assert max_blend((0, 22), (8, 30), 30) == 8
    assert max_blend((0, 3), (1, 4), 4) == 1


@pytest.mark.parametrize(("blend", "match"), [(3, "larger than the overlap.*at most 2"), (0, "at least 1")])
def test_blend_out_of_range(tiny_llama_8: Path, tmp_path: Path, blend: int, match: str) -> None:
    with pytest.raises(DuskError, match=match):
        upscale.run(upscale.config_for_model(str(tiny_llama_8), tmp_path / "b", drop=2, blend=blend))
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_blend_brings_the_second_copy_closer_to_home(tmp_path: Path) -> None:
    """SmolLM2, SOLAR m=8: after the window, the second copy's input is nearer to what its source layer sees."""
    from dusk.models.dus_scan import stacked_input_distance
    from dusk.models.io import resolve_model

    base = resolve_model("smollm2-135m")
    plain = upscale.run(upscale.config_for_model("smollm2-135m", tmp_path / "plain", drop=8))
    blended = upscale.run(upscale.config_for_model("smollm2-135m", tmp_path / "blend", drop=8, blend=4))
    k = 4
    assert stacked_input_distance(base, blended, 22 + k, 8 + k) < stacked_input_distance(base, plain, 22 + k, 8 + k)
