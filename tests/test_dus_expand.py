"""Identity-initialised expansion (--expand every:K): the expanded model computes the base model's function."""

import json
from pathlib import Path

import pytest
import torch
from opt_fixtures import tiny_opt
from transformers import AutoModelForCausalLM

from dusk.errors import DuskError
from dusk.models import upscale
from dusk.models.dus_expand import check_expand, expand_layers
from dusk.models.dus_layers import OutputLayer
from dusk.models.safetensors_io import ModelTensors


def _expand(model: Path, spec: str, out: Path) -> Path:
    return upscale.run(upscale.config_for_model(str(model), out, expand=spec))


def _logits(model_dir: Path, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return AutoModelForCausalLM.from_pretrained(model_dir).eval()(ids).logits


def _random_ids(vocab: int) -> torch.Tensor:
    return torch.randint(0, vocab, (2, 17), generator=torch.Generator().manual_seed(0))


def _assert_same_function(base: Path, expanded: Path) -> None:
    ids = _random_ids(json.loads((base / "config.json").read_text())["vocab_size"])
    torch.testing.assert_close(_logits(expanded, ids), _logits(base, ids), atol=1e-5, rtol=0)


@pytest.mark.parametrize("fixture", ["tiny_llama_4", "tiny_mistral_4", "tiny_qwen2_4"])
@pytest.mark.parametrize(("spec", "layers", "new"), [("every:2", 6, [2, 5]), ("every:3", 5, [3])])
def test_expanded_model_equals_base(
    fixture: str, spec: str, layers: int, new: list[int], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    base = request.getfixturevalue(fixture)
    out = _expand(base, spec, tmp_path / "pro")
    record = json.loads((out / "dusk_upscale.json").read_text())
    assert record["method"] == "expand" and record["new_layers"] == new
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == layers
    tensors = ModelTensors(out)
    for index in new:
        assert not tensors.read(f"model.layers.{index}.self_attn.o_proj.weight").any()
        assert not tensors.read(f"model.layers.{index}.mlp.down_proj.weight").any()
        copied = tensors.read(f"model.layers.{index}.mlp.up_proj.weight")
        assert torch.equal(copied, tensors.read(f"model.layers.{index - 1}.mlp.up_proj.weight"))
    _assert_same_function(base, out)


def test_other_projection_names_and_biases(tmp_path: Path) -> None:
    """OPT writes the residual through self_attn.out_proj and fc2, both with biases: all are zeroed."""
    base = tiny_opt(tmp_path / "opt", pre_norm=True)
    out = _expand(base, "every:1", tmp_path / "pro")
    assert json.loads((out / "dusk_upscale.json").read_text())["zeroed"] == ["self_attn.out_proj", "fc2"]
    assert not ModelTensors(out).read("model.decoder.layers.1.fc2.bias").any()
    _assert_same_function(base, out)


def test_post_norm_architecture_is_refused(tmp_path: Path) -> None:
    base = tiny_opt(tmp_path / "opt-post", pre_norm=False)
    with pytest.raises(DuskError, match="do_layer_norm_before: false.*not the identity"):
        _expand(base, "every:1", tmp_path / "pro")
    assert not (tmp_path / "pro").exists()


def test_zeroed_copies_are_not_the_identity_for_post_norm(tmp_path: Path) -> None:
    """Why the refusal is right: zeroing OPT post-norm projections changes the function."""
    base = tiny_opt(tmp_path / "opt-post", pre_norm=False)
    model = AutoModelForCausalLM.from_pretrained(base).eval()
    ids = _random_ids(128)
    with torch.no_grad():
        before = model(ids).logits
        layer = model.model.decoder.layers[1]
        for module in (layer.self_attn.out_proj, layer.fc2):
            module.weight.zero_()
            module.bias.zero_()
        assert not torch.allclose(model(ids).logits, before, atol=1e-3)


def test_expand_after_drop_keeps_the_dus_function(tiny_llama_4: Path, tmp_path: Path) -> None:
    dus = upscale.run(upscale.config_for_model(str(tiny_llama_4), tmp_path / "dus", drop=1))
    both = upscale.run(upscale.config_for_model(str(tiny_llama_4), tmp_path / "both", drop=1, expand="every:3"))
    assert json.loads((both / "config.json").read_text())["num_hidden_layers"] == 8
    _assert_same_function(dus, both)


def test_expand_layers_positions() -> None:
    layers = [OutputLayer.copy("m", i) for i in range(30)]
    out, new = expand_layers(layers, 4, ("mlp.down_proj",))
    assert len(out) == 37 and new == [4, 9, 14, 19, 24, 29, 34]
    assert out[4].terms == out[3].terms and out[4].zeroed == ("mlp.down_proj",)


@pytest.mark.parametrize(("spec", "match"), [("every:0", r"\[1, 4\]"), ("every:5", "nothing"), ("each:2", "every:K")])
def test_check_expand_refuses(spec: str, match: str) -> None:
    with pytest.raises(DuskError, match=match):
        check_expand(spec, 4)
