"""DPO and sDPO on the tiny model and real UltraFeedback pairs: cached reference, loss, sDPO's references."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dusk.models.io import load_tokenizer
from dusk.train import dpo, sdpo
from dusk.train.config import DPOConfig, SDPOConfig
from tests.train_fixtures import log_lines, preference_pairs, single_thread, tiny_config  # noqa: F401


def _fresh_logps(model_dir: Path, example: dict) -> tuple[float, float]:
    """Summed response log-probs straight from plain transformers logits (no dusk code in the path)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    sums = []
    for side in ("chosen", "rejected"):
        ids = torch.tensor([example["prompt"] + example[side]])
        with torch.no_grad():
            logps = model(ids).logits[0, :-1].log_softmax(-1).gather(-1, ids[0, 1:, None])[:, 0]
        sums.append(logps[len(example["prompt"]) - 1 :].sum().item())
    return sums[0], sums[1]


def _pairs(model_dir: Path, data: Path, n: int) -> tuple[list[dict], DPOConfig]:
    cfg = tiny_config(DPOConfig, model_dir, data, data.parent / "unused")
    examples, _ = dpo.examples_for(cfg, load_tokenizer(model_dir))
    return examples[:n], cfg


def test_cached_reference_logps_equal_fresh_ones(tiny_llama: Path, preference_pairs: Path, tmp_path: Path) -> None:  # noqa: F811
    examples, cfg = _pairs(tiny_llama, preference_pairs, 5)
    cfg = cfg.model_copy(update={"ref_cache": tmp_path / "cache"})
    first, info = dpo.reference_logps(tiny_llama, examples, cfg, pad_id=0)
    assert not info["cache_hit"] and Path(info["cache"]).is_file()
    again, info2 = dpo.reference_logps(tiny_llama, examples, cfg, pad_id=0)
    assert info2["cache_hit"] and torch.equal(first, again)
    assert info["reference_hash"] == dpo.model_hash(tiny_llama) and info["data_hash"] == dpo.data_hash(examples)
    for row, example in zip(first.tolist(), examples, strict=True):
        assert row == pytest.approx(_fresh_logps(tiny_llama, example), abs=2e-4)


def test_dpo_loss_goes_down_and_logs_rewards(tiny_llama: Path, preference_pairs: Path, tmp_path: Path) -> None:  # noqa: F811
    cfg = tiny_config(
        DPOConfig,
        tiny_llama,
        preference_pairs,
        tmp_path / "dpo",
        max_steps=8,
        lr=5e-3,
        eval_data=str(preference_pairs),
        eval_size=8,
        eval_every=8,
        max_examples=8,
    )
    out = dpo.run(cfg)
    evals = log_lines(cfg.work_dir / "log.jsonl", "eval")
    assert evals[0]["eval_loss"] == pytest.approx(0.693147, abs=1e-5)  # policy == reference at step 0
    assert evals[-1]["eval_loss"] < 0.6 and evals[-1]["eval_reward_accuracy"] > 0.5
    steps = log_lines(cfg.work_dir / "log.jsonl")
    assert {"reward_chosen", "reward_rejected", "reward_margin", "reward_accuracy"} <= set(steps[-1])
    margin = steps[-1]["reward_chosen"] - steps[-1]["reward_rejected"]
    assert steps[-1]["reward_margin"] == pytest.approx(margin, abs=1e-5)
    summary = json.loads((out / "dusk_train.json").read_text())
    assert summary["reference"]["reference_hash"] == dpo.model_hash(tiny_llama)


def test_sdpo_step_2_is_referenced_by_step_1_model(tiny_llama: Path, preference_pairs: Path, tmp_path: Path) -> None:  # noqa: F811
    cfg = tiny_config(
        SDPOConfig,
        tiny_llama,
        preference_pairs,
        tmp_path / "sdpo",
        steps=2,
        max_steps=2,
        max_examples=16,
        easy_to_hard=True,
        lr=5e-3,
    )
    final = sdpo.run(cfg)
    step1, step2 = cfg.out / "step-1", cfg.out / "step-2"
    ref1 = json.loads((step1 / "dusk_train.json").read_text())["reference"]
    ref2 = json.loads((step2 / "dusk_train.json").read_text())["reference"]
    assert ref1["reference_hash"] == dpo.model_hash(tiny_llama)
    assert ref2["reference_model"] == str(step1) and ref2["reference_hash"] == dpo.model_hash(step1)
    assert json.loads((step2 / "dusk_train.json").read_text())["source_model"] == str(step1)
    # the cached reference of step 2 holds step 1's log-probs of the second chunk, hardest pairs last
    examples, _ = _pairs(tiny_llama, preference_pairs, 16)
    initial = dpo.reference_logps(tiny_llama, examples, cfg, 0)[0]
    ordered = sdpo.easy_to_hard(examples, (initial[:, 0] - initial[:, 1]).tolist())
    cached = load_file(ref2["cache"])["logps"]
    assert cached[0].tolist() == pytest.approx(_fresh_logps(step1, ordered[8]), abs=2e-4)
    margins = (initial[:, 0] - initial[:, 1]).tolist()
    assert sorted(margins, reverse=True)[:8] == [margins[examples.index(ex)] for ex in ordered[:8]]
    assert (final / "model.safetensors").read_bytes() == (step2 / "model.safetensors").read_bytes()


def test_reference_is_computed_only_for_the_pairs_the_run_reads(tiny_llama, preference_pairs, tmp_path) -> None:  # noqa: F811
    examples, cfg = _pairs(tiny_llama, preference_pairs, 20)
    cfg = cfg.model_copy(update={"max_steps": 2, "batch_size": 3})
    read = dpo.pairs_read(examples, cfg)
    from dusk.train.loop import DataOrder

    order = DataOrder(20, cfg.seed).take(0, 6)
    assert len(read) == 6 and read == [ex for i, ex in enumerate(examples) if i in order]
    assert dpo.pairs_read(examples, cfg.model_copy(update={"max_steps": 7})) == examples  # an epoch or more: all
