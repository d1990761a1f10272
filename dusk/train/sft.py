"""Supervised fine-tuning: (prompt, response) pairs, loss on the response tokens (and EOS) only.

Prompt and response are tokenized separately and joined, so the boundary is exact: every prompt token's target
is masked, every response token is predicted. Too long: the response is cut to fit --seq-len; a prompt that
leaves no room for a response drops the example. `--packing` puts several examples in one sequence with
positions restarting per example (no attention across examples). `--lora` trains adapters and saves the
merged model plus `adapter/`.

    dusk sft --model smollm2-135m --data alpaca_gpt4 --max-steps 30 --seq-len 256 --out runs/sft
"""

import logging
from pathlib import Path

from dusk.train.batching import pack_examples, shift_targets
from dusk.train.config import SFTConfig
from dusk.train.data_source import load_records
from dusk.train.loop import Example
from dusk.train.stage import limit, load_eval_records, require_examples, run_next_token_stage, split_heldout

log = logging.getLogger(__name__)


def tokenize_pairs(records: list[dict], tokenizer, seq_len: int) -> tuple[list[Example], int]:
    """SFT examples (input_ids, targets masked on the prompt) and the number of records dropped as too long."""
    prompts = tokenizer([r["prompt"] for r in records], add_special_tokens=True)["input_ids"]
    responses = tokenizer([r["response"] for r in records], add_special_tokens=False)["input_ids"]
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    examples, dropped = [], 0
    for prompt, response in zip(prompts, responses, strict=True):
        if len(prompt) >= seq_len:
            dropped += 1
            continue
        ids = (prompt + response + eos)[:seq_len]
        examples.append({"input_ids": ids, "targets": shift_targets(ids, len(prompt)), "prompt_len": len(prompt)})
    return examples, dropped


def examples_for(cfg: SFTConfig, tokenizer) -> tuple[list[Example], list[Example]]:
    """(train, held-out) examples; packed after the split when --packing, so held-out examples stay whole."""
    records = load_records(cfg.data, "instruction", cfg.template, tokenizer, cfg.split, cfg.data_kind)
    examples, dropped = tokenize_pairs(records, tokenizer, cfg.seq_len)
    require_examples(examples, "sft", len(records), dropped, f"prompt of --seq-len {cfg.seq_len} tokens or more")
    train_ex, eval_ex = split_heldout(examples, cfg)
    eval_records = load_eval_records(cfg, "instruction", tokenizer)
    if eval_records is not None:
        eval_ex = tokenize_pairs(eval_records, tokenizer, cfg.seq_len)[0][: cfg.eval_size or None]
    train_ex = limit(train_ex, cfg)
    if cfg.packing:
        train_ex = pack_examples(train_ex, cfg.seq_len)
    return train_ex, eval_ex


def run(cfg: SFTConfig) -> Path:
    """Fine-tune cfg.model on cfg.data's prompt/response pairs; returns the output model directory."""
    return run_next_token_stage(cfg, "sft", examples_for)
