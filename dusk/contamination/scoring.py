"""The two model computations of the contamination test, each sharing one prefix forward through a KV cache.

- `sample_continuations`: the reference model draws S continuations of a prefix, all at once (one prefix
  forward, the cache repeated S times, then one batched step per new token).
- `score_rows`: a model's per-token log-probabilities of R continuations of the same prefix (the real one and
  the samples), again one prefix forward and one batched forward of the rows.

No padding is ever needed: every row of a call has the same length.

    python -c "from dusk.contamination.scoring import sample_continuations; help(sample_continuations)"
"""

import copy
from collections.abc import Sequence

import torch

# Logit values held at once while scoring rows (2**26 floats = 256 MiB); rows are scored in chunks that fit.
LOGITS_BUDGET = 1 << 26


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _prefix_forward(model, prefix_ids: Sequence[int]):
    """One forward of the prefix: (its KV cache, its logits [P, V])."""
    out = model(input_ids=torch.tensor([list(prefix_ids)], device=_device(model)), use_cache=True)
    return out.cache, out.logits[0].float()


def _pick(logits: torch.Tensor, generator: torch.Generator, banned: torch.Tensor, top_k: int, temperature: float):
    """Sample one token per row of `logits` [S, V]: banned ids removed, top-k filter, softmax at `temperature`.
    Drawn on the CPU with the CPU `generator`, so a seed draws the same tokens whatever device the model is on."""
    logits = logits.float().cpu() / temperature
    if banned.numel():
        logits[:, banned] = float("-inf")
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)


@torch.inference_mode()
def sample_continuations(
    model,
    prefix_ids: Sequence[int],
    length: int,
    samples: int,
    generator: torch.Generator,
    banned_ids: Sequence[int] = (),
    top_k: int = 50,
    temperature: float = 1.0,
) -> torch.Tensor:
    """`samples` continuations of exactly `length` tokens each ([samples, length]); `banned_ids` are never drawn."""
    if length < 1 or samples < 1:
        raise ValueError(f"need length >= 1 and samples >= 1, got {length} and {samples}")
    banned = torch.tensor(sorted(set(banned_ids)), dtype=torch.long)
    cache, logits = _prefix_forward(model, prefix_ids)
    cache.batch_repeat_interleave(samples)
    next_logits = logits[-1:].expand(samples, -1)
    tokens = []
    for step in range(length):
        token = _pick(next_logits, generator, banned, top_k, temperature)  # [S, 1]
        tokens.append(token)
        if step + 1 < length:
            out = model(input_ids=token.to(_device(model)), cache=cache, use_cache=True)
            next_logits = out.logits[:, -1]  # the cache grew in place
    return torch.cat(tokens, dim=1)


def _gather(logprobs: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return logprobs.gather(-1, ids.unsqueeze(-1)).squeeze(-1)


@torch.inference_mode()
def score_rows(model, prefix_ids: Sequence[int], rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities of the prefix's own tokens [P-1] and of each row's tokens after the prefix [R, L]."""
    cache, logits = _prefix_forward(model, prefix_ids)
    rows = rows.to(_device(model))
    prefix = torch.tensor(list(prefix_ids), device=rows.device)
    prefix_logprobs = _gather(torch.log_softmax(logits[:-1], dim=-1), prefix[1:])
    first = torch.log_softmax(logits[-1], dim=-1)  # the distribution of every row's first token
    n_rows, length = rows.shape
    chunk = max(1, LOGITS_BUDGET // (length * logits.shape[-1]))
    parts = []
    for start in range(0, n_rows, chunk):
        part = rows[start : start + chunk]
        part_cache = copy.deepcopy(cache)
        part_cache.batch_repeat_interleave(part.shape[0])
        out = model(input_ids=part, cache=part_cache, use_cache=True)
        rest = _gather(torch.log_softmax(out.logits[:, :-1].float(), dim=-1), part[:, 1:])
        parts.append(torch.cat([first[part[:, :1]], rest], dim=1))
    return prefix_logprobs.cpu(), torch.cat(parts).cpu()
