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

from dusk.atomic import check_output_dir
from dusk.models.io import load_tokenizer, resolve_model
from dusk.train.batching import pack_examples, shift_targets
from dusk.train.config import SFTConfig
from dusk.train.data_source import load_records
from dusk.train.loop import Example, train
from dusk.train.model import TargetLogProbs, check_seq_len, load_for_training
from dusk.train.stage import finish, limit, lm_task, load_eval_records, require_examples, split_heldout

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
    records = load_records(cfg.data, "instruction", cfg.template, tokenizer)
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
    check_output_dir(cfg.out, cfg.force)
    model_dir = resolve_model(cfg.model)
    check_seq_len(model_dir, cfg.seq_len)
    tokenizer = load_tokenizer(model_dir)
    train_ex, eval_ex = examples_for(cfg, tokenizer)
    log.info("sft: %d training sequences, %d held-out examples", len(train_ex), len(eval_ex))
    lm, peft_model = load_for_training(model_dir, cfg)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    result = train(cfg, TargetLogProbs(lm), lm_task("sft", pad_id), train_ex, eval_ex)
    extra = {"stage": "sft", "train_sequences": len(train_ex), "eval_examples": len(eval_ex)}
    return finish(cfg, lm, peft_model, model_dir, result, extra)
