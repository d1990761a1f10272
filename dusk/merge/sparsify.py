"""Sparsify task vectors the way TIES and DARE do: keep the largest magnitudes, or drop at random and rescale.

`magnitude` keeps exactly k = max(1, int(density * numel)) entries, the same ones mergekit 0.1.5 keeps: the k
largest |delta| (its `torch.argsort(descending=True)[:k]`). dusk finds the k-th largest value by a two-pass radix
select over the float bits (O(n), no index tensor) and only falls back to the argsort itself when several entries
tie exactly at the cut, because then which tied entries survive is whatever that sort's order is.

    python -c "import torch; from dusk.merge.sparsify import magnitude as m; print(m(torch.tensor([3., -1, 2]), 0.5))"
"""

import torch

_HIGH_BINS = 1 << 15  # non-negative float32 bit patterns have 15 significant high bits
_LOW_BINS = 1 << 16


def _kth_largest_bits(bits: torch.Tensor, k: int) -> int:
    """The k-th largest value (1-based) of non-negative int32 `bits`, by radix select on 16-bit halves."""
    rank = bits.numel() - k  # 0-based position of the answer in ascending order
    high = bits >> 16
    below = torch.bincount(high, minlength=_HIGH_BINS).cumsum(0)  # [b] = #(high <= b)
    bucket = int(torch.searchsorted(below, rank, right=True))
    rank -= int(below[bucket - 1]) if bucket else 0
    low = bits[high == bucket] & 0xFFFF
    below_low = torch.bincount(low, minlength=_LOW_BINS).cumsum(0)
    return (bucket << 16) | int(torch.searchsorted(below_low, rank, right=True))


def top_k_mask(magnitudes: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the k largest entries of a flat non-negative float32 tensor (mergekit's choice on ties)."""
    bits = magnitudes.view(torch.int32)
    threshold = _kth_largest_bits(bits, k)
    mask = bits >= threshold
    if int(mask.sum()) == k:
        return mask
    # Entries tie at the threshold and only some of them fit: replay the sort mergekit uses, for its tie order.
    mask = torch.zeros_like(mask)
    mask[torch.argsort(magnitudes, descending=True)[:k]] = True
    return mask


def magnitude(delta: torch.Tensor, density: float) -> torch.Tensor:
    """delta * m, m = 1 on the k = max(1, int(density * numel)) largest |delta|, 0 elsewhere (TIES trim)."""
    if density >= 1:
        return delta
    if density <= 0 or delta.numel() == 0:
        return torch.zeros_like(delta)
    k = max(1, int(density * delta.numel()))
    magnitudes = delta.abs().reshape(-1).float().contiguous()
    mask = top_k_mask(magnitudes, k).reshape(delta.shape)
    return delta * mask.to(delta.dtype)


def rescale_l1(delta: torch.Tensor, kept: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """kept * (|delta|_1 / |kept|_1): restore the task vector's L1 norm after dropping (unless either is ~0)."""
    before, after = delta.abs().sum(), kept.abs().sum()
    if before < eps or after < eps:
        return kept
    return kept * (before / after)


def bernoulli(delta: torch.Tensor, density: float, rescale: bool, generator: torch.Generator) -> torch.Tensor:
    """DARE drop: keep each entry with probability `density` (m ~ Bernoulli(density)), then optionally rescale_l1."""
    if density >= 1:
        return delta
    work = delta.dtype if delta.dtype == torch.bfloat16 else torch.float32
    source = delta.to(work)
    mask = torch.bernoulli(torch.full_like(source, density), generator=generator)
    kept = source * mask
    return (rescale_l1(source, kept) if rescale else kept).to(delta.dtype)
