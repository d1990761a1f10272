"""Test helpers for the contamination test: plain causal-LM fine-tuning on a list of texts (torch AdamW), so a
test can make a model that has seen chosen benchmark items. Used by tests/test_contamination*.py and
bench/contamination_smollm2.py."""

import random
from pathlib import Path

import torch

from dusk.models.io import copy_side_files, load_model, load_tokenizer


def _batch(encoded: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded input ids, attention mask and labels (-100 on padding) for a list of token lists."""
    width = max(len(ids) for ids in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, tokens in enumerate(encoded):
        ids[row, : len(tokens)] = torch.tensor(tokens)
        mask[row, : len(tokens)] = 1
    return ids, mask, ids.masked_fill(mask == 0, -100)


def finetune_on_texts(
    model_dir: Path, texts: list[str], out: Path, steps: int, lr: float, batch_size: int = 8, seed: int = 0
) -> Path:
    """Train `model_dir` on `texts` (plain next-token loss on every token, AdamW) and save it to `out`."""
    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir).train()
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    encoded = [tokenizer(text)["input_ids"] for text in texts]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rng = random.Random(seed)
    for _ in range(steps):
        ids, mask, labels = _batch(rng.sample(encoded, min(batch_size, len(encoded))), pad_id)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval().save_pretrained(out)
    copy_side_files(model_dir, out)
    return out
