"""Token sequences with targets, and how several become one batch: right padding, or packing without leakage.

An example is {"input_ids": [...], "targets": [...]} of equal length, where targets[t] is the token to predict
after input_ids[:t+1], or IGNORE. Packed examples also carry "position_ids" that restart at 0 for every original
example: the model (transformers' mask builder, with no 2D attention mask) then lets a token attend only to
earlier tokens of its own example, a block-diagonal causal mask.

    python -c "from dusk.train.batching import shift_targets; print(shift_targets([5, 6, 7], 1))"   # [6, 7, -100]
"""

from typing import Any

import torch

from dusk.train.model import IGNORE

Example = dict[str, Any]


def shift_targets(ids: list[int], first_target: int) -> list[int]:
    """Next-token targets of `ids`, with IGNORE before position `first_target - 1` and at the end.

    first_target is the index of the first token that carries a loss (0 or 1: every token; len(prompt): response).
    """
    targets = ids[1:] + [IGNORE]
    start = max(first_target - 1, 0)
    return [IGNORE] * start + targets[start:]


def count_targets(example: Example) -> int:
    return sum(1 for t in example["targets"] if t != IGNORE)


def pad_collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor | None]:
    """Right-pad to the longest example. No attention mask is needed: causal attention never looks right,
    and padded positions have no target. Packed examples bring position_ids; padding gets its own segment."""
    width = max(len(ex["input_ids"]) for ex in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    targets = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    packed = any("position_ids" in ex for ex in examples)
    positions = torch.arange(width).repeat(len(examples), 1) if packed else None
    for row, ex in enumerate(examples):
        n = len(ex["input_ids"])
        input_ids[row, :n] = torch.tensor(ex["input_ids"])
        targets[row, :n] = torch.tensor(ex["targets"])
        if positions is not None:
            positions[row, :n] = torch.tensor(ex.get("position_ids", range(n)))
            positions[row, n:] = torch.arange(width - n)
    return {"input_ids": input_ids, "targets": targets, "position_ids": positions}


def pack_examples(examples: list[Example], seq_len: int) -> list[Example]:
    """Greedy in-order packing into sequences of at most seq_len tokens, positions restarting per example."""
    packed: list[Example] = []
    current: Example = {"input_ids": [], "targets": [], "position_ids": []}
    for ex in examples:
        if current["input_ids"] and len(current["input_ids"]) + len(ex["input_ids"]) > seq_len:
            packed.append(current)
            current = {"input_ids": [], "targets": [], "position_ids": []}
        current["input_ids"] += ex["input_ids"]
        current["targets"] += ex["targets"]
        current["position_ids"] += list(range(len(ex["input_ids"])))
    if current["input_ids"]:
        packed.append(current)
    return packed
