"""The memory plan of a training stage: parameters counted from config.json alone, each lowering change lowers the
estimate, sharding divides the fp32 state by the process count, and the advice names the first change that fits."""

import json
from pathlib import Path

import pytest
from safetensors import safe_open

from dusk.errors import DuskError
from dusk.train.config import DPOConfig, SFTConfig
from dusk.train.memory_plan import GIB, Setting, advice, estimate, format_plan, plan_rows, shape_of

SOLAR = {
    "model_type": "llama",
    "num_hidden_layers": 48,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 32000,
    "tie_word_embeddings": False,
}


def _model_dir(tmp_path: Path, config: dict) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


def _sft(model: Path, **fields) -> SFTConfig:
    return SFTConfig(model=str(model), data="d.jsonl", out=model / "out", **fields)


def test_parameter_count_is_the_checkpoints(tiny_llama: Path) -> None:
    with safe_open(tiny_llama / "model.safetensors", "pt") as handle:
        stored = sum(_numel(handle, name) for name in handle.keys())
    shape = shape_of(json.loads((tiny_llama / "config.json").read_text()))
    assert shape.parameters() == stored


def _numel(handle, name: str) -> int:
    size = 1
    for dim in handle.get_slice(name).get_shape():
        size *= dim
    return size


def test_solar_has_10_7_billion_parameters_and_needs_sharding_on_80gb(tmp_path: Path) -> None:
    model = _model_dir(tmp_path, SOLAR)
    assert shape_of(SOLAR).parameters() == pytest.approx(10.7e9, rel=0.01)
    rows = plan_rows(_sft(model, seq_len=4096, batch_size=1), model, 8, 80 * GIB)
    assert rows[0].fits is False and rows[0].estimate.optimizer > 75 * GIB  # fp32 AdamW state alone: ~80 GiB
    totals = [row.estimate.total for row in rows]
    assert totals == sorted(totals, reverse=True)  # every listed change lowers the peak
    assert "fits with" in advice(rows) and any(row.fits for row in rows)
    text = format_plan("sft", rows, 80 * GIB)
    assert "--shard fsdp" in text and "NO" in text and "80 GiB" in text


def test_sharding_divides_weights_gradients_and_optimizer_state(tiny_llama: Path) -> None:
    shape = shape_of(json.loads((tiny_llama / "config.json").read_text()))
    base = Setting.of(_sft(tiny_llama), 4)
    alone, sharded = estimate(shape, base), estimate(shape, Setting.of(_sft(tiny_llama, shard="fsdp"), 4))
    assert sharded.optimizer * 4 == pytest.approx(alone.optimizer, abs=8)
    assert sharded.gradients < alone.gradients  # (weights: the gathered root and layers outweigh a tiny model's)
    assert sharded.weights + sharded.gradients + sharded.optimizer < alone.weights + alone.gradients + alone.optimizer
    assert sharded.activations == alone.activations  # each process still runs its own micro-batch


def test_checkpointing_bf16_lora_and_dpo_change_the_right_terms(tiny_llama: Path) -> None:
    shape = shape_of(json.loads((tiny_llama / "config.json").read_text()))
    plain = estimate(shape, Setting.of(_sft(tiny_llama), 1))
    checkpointed = estimate(shape, Setting.of(_sft(tiny_llama, gradient_checkpointing=True), 1))
    lora = estimate(shape, Setting.of(_sft(tiny_llama, lora=True, lora_r=4), 1))
    dpo = estimate(shape, Setting.of(DPOConfig(model=str(tiny_llama), data="d", out=tiny_llama / "o"), 1))
    assert checkpointed.activations < plain.activations and checkpointed.optimizer == plain.optimizer
    assert lora.optimizer < plain.optimizer / 4 and lora.weights > plain.weights  # adapters on top of the base
    assert dpo.activations > plain.activations  # prompt + chosen + rejected in a row


def test_a_config_without_sizes_is_refused(tmp_path: Path) -> None:
    model = _model_dir(tmp_path, {"model_type": "llama", "hidden_size": 64})
    with pytest.raises(DuskError, match="num_hidden_layers"):
        plan_rows(_sft(model), model, 1, None)
