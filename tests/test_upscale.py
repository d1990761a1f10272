"""Depth Up-Scaling: every output tensor equals its source tensor exactly; outputs load and run in transformers."""

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from dusk.models import upscale
from dusk.models.safetensors_io import ModelTensors


def _slices(*ranges: tuple[str | Path, int, int]) -> list[upscale.Slice]:
    return [upscale.Slice(sources=[upscale.SliceSource(model=str(m), layer_range=(a, b))]) for m, a, b in ranges]


def _run(slices: list[upscale.Slice], out: Path, **kwargs) -> Path:
    return upscale.run(upscale.UpscaleConfig(slices=slices, out=out, **kwargs))


def _assert_layer_copied(out: ModelTensors, out_layer: int, src: ModelTensors, src_layer: int) -> None:
    suffixes = [n.split(f"layers.{src_layer}.", 1)[1] for n in src.names() if f".layers.{src_layer}." in n]
    assert suffixes
    for suffix in suffixes:
        got = out.read(f"model.layers.{out_layer}.{suffix}")
        want = src.read(f"model.layers.{src_layer}.{suffix}")
        assert got.dtype == want.dtype and torch.equal(got, want), suffix


def test_solar_drop_maps_every_tensor_to_its_source(tiny_llama_4: Path, tmp_path: Path) -> None:
    cfg = upscale.config_for_drop(str(tiny_llama_4), drop=1, out=tmp_path / "dus")
    out = ModelTensors(upscale.run(cfg))
    src = ModelTensors(tiny_llama_4)
    expected_sources = [0, 1, 2, 1, 2, 3]  # [0, n-m) then [m, n) with n=4, m=1
    for out_layer, src_layer in enumerate(expected_sources):
        _assert_layer_copied(out, out_layer, src, src_layer)
    shared = [n for n in src.names() if ".layers." not in n]
    assert sorted(n for n in out.names() if ".layers." not in n) == sorted(shared)
    for name in shared:
        assert torch.equal(out.read(name), src.read(name))
    assert len(out.names()) == len(shared) + 6 * (len(src.names()) - len(shared)) // 4
    config = json.loads((tmp_path / "dus" / "config.json").read_text())
    assert config["num_hidden_layers"] == 6
    assert config["tie_word_embeddings"] is True and "lm_head.weight" not in out.names()
    assert (tmp_path / "dus" / "tokenizer.json").read_bytes() == (tiny_llama_4 / "tokenizer.json").read_bytes()


def test_upscaled_model_loads_and_runs_forward(tiny_llama_4: Path, tmp_path: Path) -> None:
    out = upscale.run(upscale.config_for_drop(str(tiny_llama_4), drop=1, out=tmp_path / "dus"))
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.num_hidden_layers == 6 and len(model.model.layers) == 6
    logits = model(torch.tensor([[1, 5, 9, 13]])).logits
    assert logits.shape == (1, 4, model.config.vocab_size) and torch.isfinite(logits).all()
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # still tied


def test_single_full_slice_reproduces_the_input(tiny_llama_4: Path, tmp_path: Path) -> None:
    out = _run(_slices((tiny_llama_4, 0, 4)), tmp_path / "same")
    src, got = ModelTensors(tiny_llama_4), ModelTensors(out)
    assert sorted(src.names()) == sorted(got.names())
    for name in src.names():
        assert src.read_bytes(name) == got.read_bytes(name)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    want = AutoModelForCausalLM.from_pretrained(tiny_llama_4)(ids).logits
    assert torch.equal(AutoModelForCausalLM.from_pretrained(out)(ids).logits, want)


def test_slices_from_two_models(tiny_llama_4: Path, tiny_llama_4b: Path, tmp_path: Path) -> None:
    out = ModelTensors(_run(_slices((tiny_llama_4, 0, 2), (tiny_llama_4b, 1, 4)), tmp_path / "two"))
    a, b = ModelTensors(tiny_llama_4), ModelTensors(tiny_llama_4b)
    for out_layer, (src, src_layer) in enumerate([(a, 0), (a, 1), (b, 1), (b, 2), (b, 3)]):
        _assert_layer_copied(out, out_layer, src, src_layer)
    assert torch.equal(out.read("model.embed_tokens.weight"), a.read("model.embed_tokens.weight"))
    assert not torch.equal(out.read("model.embed_tokens.weight"), b.read("model.embed_tokens.weight"))


@pytest.mark.parametrize("fixture", ["tiny_qwen2_4", "tiny_mistral_4"])
def test_other_llama_family_architectures(fixture: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    source = request.getfixturevalue(fixture)
    out = upscale.run(upscale.config_for_drop(str(source), drop=1, out=tmp_path / "dus"))
    _assert_layer_copied(ModelTensors(out), 3, ModelTensors(source), 1)
    config = json.loads((out / "config.json").read_text())
    if "layer_types" in config:
        assert len(config["layer_types"]) == 6
    model = AutoModelForCausalLM.from_pretrained(out)
    assert len(model.model.layers) == 6
    assert torch.isfinite(model(torch.tensor([[1, 2, 3]])).logits).all()


def test_per_layer_config_lists_follow_their_layers(tiny_qwen2_4: Path, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for file in tiny_qwen2_4.iterdir():
        (source / file.name).write_bytes(file.read_bytes())
    config = json.loads((source / "config.json").read_text())
    config["layer_types"] = ["full_attention", "sliding_attention", "full_attention", "sliding_attention"]
    config["sliding_window"] = 16
    (source / "config.json").write_text(json.dumps(config))
    out = _run(_slices((source, 0, 2), (source, 1, 4)), tmp_path / "out")
    assert json.loads((out / "config.json").read_text())["layer_types"] == [
        "full_attention",
        "sliding_attention",
        "sliding_attention",
        "full_attention",
        "sliding_attention",
    ]


def test_sharded_output_and_dtype_cast_load(tiny_llama_4: Path, tmp_path: Path) -> None:
    out = _run(
        _slices((tiny_llama_4, 0, 3), (tiny_llama_4, 1, 4)), tmp_path / "sharded", shard_size="100KB", dtype="bfloat16"
    )
    assert len(list(out.glob("model-*-of-*.safetensors"))) > 1 and (out / "model.safetensors.index.json").exists()
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.dtype == torch.bfloat16 and len(model.model.layers) == 6
    want = ModelTensors(tiny_llama_4).read("model.layers.1.mlp.up_proj.weight").to(torch.bfloat16)
    assert torch.equal(ModelTensors(out).read("model.layers.3.mlp.up_proj.weight"), want)


def test_slices_yaml_file(tiny_llama_4: Path, tmp_path: Path) -> None:
    spec = tmp_path / "slices.yaml"
    spec.write_text(
        f"merge_method: passthrough\nslices:\n"
        f"  - sources: [{{model: {tiny_llama_4}, layer_range: [0, 3]}}]\n"
        f"  - sources: [{{model: {tiny_llama_4}, layer_range: [1, 4]}}]\n"
    )
    cfg = upscale.load_slices_file(spec, tmp_path / "out")
    assert json.loads((upscale.run(cfg) / "config.json").read_text())["num_hidden_layers"] == 6
