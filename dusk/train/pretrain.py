"""Continued pretraining: text records tokenized, joined with EOS, cut into fixed-length sequences; causal LM loss.

Documents are tokenized in pieces only until enough sequences exist for the run (steps x global batch, plus the
held-out ones), so a large corpus costs only what the run reads.

    dusk pretrain --model runs/smollm2-dus --data tinyshakespeare --max-steps 50 --seq-len 256 --out runs/pt
"""

import logging
from collections.abc import Iterator
from pathlib import Path

from dusk.train.batching import shift_targets
from dusk.train.config import PretrainConfig
from dusk.train.data_source import load_records
from dusk.train.loop import Example
from dusk.train.stage import limit, require_examples, run_next_token_stage, split_heldout, world_size

log = logging.getLogger(__name__)
PIECE_CHARS = 1 << 16  # tokenize long documents 64 KiB at a time (cut at a line break)


def _pieces(text: str) -> Iterator[str]:
    start = 0
    while start < len(text):
        end = min(len(text), start + PIECE_CHARS)
        if end < len(text):
            cut = text.rfind("\n", start, end)
            end = cut + 1 if cut > start else end
        yield text[start:end]
        start = end


def pack_texts(texts: list[str], tokenizer, seq_len: int, needed: int | None) -> list[Example]:
    """Fixed-length sequences of seq_len tokens (documents joined by EOS; the last partial one dropped)."""
    eos = tokenizer.eos_token_id
    buffer: list[int] = []
    sequences: list[Example] = []
    for text in texts:
        pieces = list(_pieces(text))
        for i, piece in enumerate(pieces):
            buffer += tokenizer(piece, add_special_tokens=False)["input_ids"]
            if i == len(pieces) - 1 and eos is not None:
                buffer.append(eos)
            while len(buffer) >= seq_len:
                ids, buffer = buffer[:seq_len], buffer[seq_len:]
                sequences.append({"input_ids": ids, "targets": shift_targets(ids, 0)})
            if needed is not None and len(sequences) >= needed:
                return sequences[:needed]
    return sequences


def examples_for(cfg: PretrainConfig, tokenizer) -> tuple[list[Example], list[Example]]:
    """(train, held-out) sequences for the run."""
    records = load_records(cfg.data, "text", split=cfg.split, data_kind=cfg.data_kind)
    steps_need = cfg.max_steps * cfg.batch_size * cfg.grad_accum * world_size()
    needed = (cfg.max_examples or steps_need) + (0 if cfg.eval_data else cfg.eval_size)
    sequences = pack_texts([r["text"] for r in records], tokenizer, cfg.seq_len, needed)
    chars = sum(len(r["text"]) for r in records)
    require_examples(sequences, "pretrain", len(records), 0, f"{chars} characters: fewer than --seq-len tokens")
    train_ex, eval_ex = split_heldout(sequences, cfg)
    if cfg.eval_data:
        eval_records = load_records(cfg.eval_data, "text")
        eval_ex = pack_texts([r["text"] for r in eval_records], tokenizer, cfg.seq_len, cfg.eval_size or None)
    return limit(train_ex, cfg), eval_ex


def run(cfg: PretrainConfig) -> Path:
    """Continue pretraining cfg.model on cfg.data; returns the output model directory."""
    return run_next_token_stage(cfg, "pretrain", examples_for)
