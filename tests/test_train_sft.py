"""SFT on the tiny model and real Alpaca-GPT4 records: loss masking, packing, LoRA output, bad input."""

import json
from pathlib import Path

import pytest
import torch

from dusk.errors import DuskError
from dusk.models.io import load_tokenizer
from dusk.train import sft
from dusk.train.batching import count_targets, pad_collate
from dusk.train.config import SFTConfig
from dusk.train.model import IGNORE, TargetLogProbs
from tests.train_fixtures import alpaca_pairs, log_lines, single_thread, tiny_config, write_jsonl  # noqa: F401


def test_sft_labels_mask_exactly_the_prompt_tokens(tiny_llama: Path) -> None:
    tokenizer = load_tokenizer(tiny_llama)
    record = {"prompt": "### User:\nWhat is water?\n\n### Assistant:\n", "response": "Water boils at 100 degrees."}
    (example,), dropped = sft.tokenize_pairs([record], tokenizer, seq_len=64)
    prompt_ids = tokenizer(record["prompt"])["input_ids"]
    response_ids = tokenizer(record["response"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert dropped == 0 and example["input_ids"] == prompt_ids + response_ids
    predicted = [t for t in example["targets"] if t != IGNORE]
    assert predicted == response_ids  # every response token and EOS, nothing of the prompt
    first = example["targets"].index(response_ids[0])
    assert first == len(prompt_ids) - 1 and all(t == IGNORE for t in example["targets"][:first])


def test_packed_loss_equals_unpacked_loss(tiny_llama: Path, alpaca_pairs: Path) -> None:  # noqa: F811
    from dusk.models.io import load_model

    tokenizer = load_tokenizer(tiny_llama)
    records = [json.loads(line) for line in alpaca_pairs.read_text().splitlines()[:12]]
    examples, _ = sft.tokenize_pairs([{**r, "response": r["response"][:80]} for r in records], tokenizer, 96)
    model = TargetLogProbs(load_model(tiny_llama))
    with torch.no_grad():
        unpacked_sum = sum(-model(**_inputs(pad_collate([ex], 0))).sum() for ex in examples)
        packed_batch = pad_collate(sft.pack_examples(examples, 96 * 4), 0)
        packed_sum = -model(**_inputs(packed_batch)).sum()
    assert packed_batch["input_ids"].shape[0] < len(examples) / 2  # several examples share a sequence
    assert sum(count_targets(ex) for ex in examples) == int((packed_batch["targets"] != IGNORE).sum())
    assert packed_sum.item() == pytest.approx(unpacked_sum.item(), rel=1e-5)
    leaky = dict(packed_batch, position_ids=None)  # the same packed rows with one causal mask: examples see each other
    with torch.no_grad():
        assert -model(**_inputs(leaky)).sum().item() != pytest.approx(unpacked_sum.item(), rel=1e-4)


def _inputs(batch: dict) -> dict:
    return {k: batch[k] for k in ("input_ids", "targets", "position_ids")}


def test_sft_loss_goes_down_on_real_data(tiny_llama: Path, alpaca_pairs: Path, tmp_path: Path) -> None:  # noqa: F811
    cfg = tiny_config(SFTConfig, tiny_llama, alpaca_pairs, tmp_path / "sft", max_steps=12, eval_size=16, eval_every=12)
    out = sft.run(cfg)
    evals = log_lines(cfg.work_dir / "log.jsonl", "eval")
    assert [e["step"] for e in evals] == [0, 12]
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"] - 0.3
    summary = json.loads((out / "dusk_train.json").read_text())
    assert summary["steps"] == 12 and summary["eval"]["eval_loss"] == evals[-1]["eval_loss"]
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()


def test_packed_sft_run_and_lora_output_loads_in_plain_transformers(
    tiny_llama: Path,
    alpaca_pairs: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    cfg = tiny_config(
        SFTConfig,
        tiny_llama,
        alpaca_pairs,
        tmp_path / "lora",
        lora=True,
        lora_r=4,
        packing=True,
        lora_targets=["q_proj", "v_proj"],
        max_steps=3,
        lr=1e-2,
    )
    out = sft.run(cfg)
    merged = AutoModelForCausalLM.from_pretrained(out)  # plain transformers, no peft
    assert not any("lora" in name for name, _ in merged.named_parameters())
    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    assert not torch.equal(merged.model.layers[0].self_attn.q_proj.weight, base.model.layers[0].self_attn.q_proj.weight)
    assert torch.equal(merged.model.layers[0].mlp.up_proj.weight, base.model.layers[0].mlp.up_proj.weight)
    adapted = PeftModel.from_pretrained(base, out / "adapter").eval()
    ids = torch.tensor([[5, 17, 33, 60, 2]])
    with torch.no_grad():
        assert torch.allclose(adapted(ids).logits, merged.eval()(ids).logits, atol=1e-5)


def test_unknown_lora_target_lists_the_modules_that_exist(tiny_llama, alpaca_pairs, tmp_path) -> None:  # noqa: F811
    cfg = tiny_config(SFTConfig, tiny_llama, alpaca_pairs, tmp_path / "x", lora=True, lora_targets=["qkv_proj"])
    with pytest.raises(DuskError, match=r"no module named qkv_proj.*k_proj, o_proj, q_proj, up_proj, v_proj"):
        sft.run(cfg)
    assert not (tmp_path / "x").exists()


def test_seq_len_above_model_maximum_is_refused(tiny_llama, alpaca_pairs, tmp_path) -> None:  # noqa: F811
    cfg = tiny_config(SFTConfig, tiny_llama, alpaca_pairs, tmp_path / "x", seq_len=4096)
    with pytest.raises(DuskError, match=r"--seq-len 4096 is above the model's maximum 2048"):
        sft.run(cfg)


def test_empty_dataset_after_filtering_says_why(tiny_llama: Path, tmp_path: Path) -> None:
    long_prompts = write_jsonl(tmp_path / "long.jsonl", [{"prompt": "word " * 200, "response": "ok"}] * 3)
    cfg = tiny_config(SFTConfig, tiny_llama, long_prompts, tmp_path / "x", seq_len=32)
    with pytest.raises(
        DuskError, match=r"no training examples left: 3 record\(s\), 3 dropped \(prompt of --seq-len 32"
    ):
        sft.run(cfg)


def test_gradient_checkpointing_gives_the_same_losses(tiny_llama, alpaca_pairs, tmp_path) -> None:  # noqa: F811
    plain = tiny_config(SFTConfig, tiny_llama, alpaca_pairs, tmp_path / "plain", max_steps=3)
    sft.run(plain)
    ckpt = plain.model_copy(update={"out": tmp_path / "ckpt", "gradient_checkpointing": True})
    sft.run(ckpt)
    losses = [[line["loss"] for line in log_lines(c.work_dir / "log.jsonl")] for c in (plain, ckpt)]
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)


def test_bf16_autocast_trains_close_to_fp32(tiny_llama, alpaca_pairs, tmp_path) -> None:  # noqa: F811
    fp32 = tiny_config(SFTConfig, tiny_llama, alpaca_pairs, tmp_path / "fp32", max_steps=2)
    sft.run(fp32)
    bf16 = fp32.model_copy(update={"out": tmp_path / "bf16", "precision": "bf16"})
    sft.run(bf16)
    losses = [[line["loss"] for line in log_lines(c.work_dir / "log.jsonl")] for c in (fp32, bf16)]
    assert losses[1] == pytest.approx(losses[0], rel=0.02) and losses[1] != losses[0]  # bf16 really was used
