"""Integration on the real default model (SmolLM2-135M-Instruct from its GGUF): conversion and DUS."""

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from dusk.models import gguf, upscale
from dusk.models.builtin import builtin_model, packaged_gguf
from dusk.models.io import resolve_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2_dir() -> Path:
    return resolve_model("smollm2-135m")


def test_conversion_matches_the_gguf_loaded_model(smollm2_dir: Path) -> None:
    gguf_file = packaged_gguf(builtin_model("smollm2-135m"))
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    ids = tokenizer("Depth up-scaling stacks layers of a model.", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        converted = AutoModelForCausalLM.from_pretrained(smollm2_dir)(ids).logits
        reference = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)(ids).logits
    assert (converted - reference).abs().max().item() <= 1e-4
    assert tokenizer.chat_template


def test_conversion_is_cached_by_content(smollm2_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_second_conversion(*_args):
        raise AssertionError("converted twice")

    monkeypatch.setattr(gguf, "_convert_into", no_second_conversion)
    assert resolve_model("smollm2-135m") == smollm2_dir


def test_solar_dus_of_smollm2_gives_44_layers_that_generate(smollm2_dir: Path, tmp_path: Path) -> None:
    out = upscale.run(upscale.config_for_drop("smollm2-135m", drop=8, out=tmp_path / "dus"))
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.num_hidden_layers == 44 and len(model.model.layers) == 44
    inputs = tokenizer("The capital of France is", return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    text = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert len(text.strip()) > 0
