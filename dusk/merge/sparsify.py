"""Sparsify task vectors the way TIES and DARE do: keep the largest magnitudes, or drop at random and rescale.

`magnitude` keeps exactly k = max(1, int(density * numel)) entries, the same ones mergekit 0.1.5 keeps: the k
largest |delta| (its `torch.argsort(descending=True)[:k]`). dusk finds the k-th largest value by a two-pass radix
select over the float bits (O(n), no index tensor) and only falls back to the argsort itself when several entries
tie exactly at the cut, because then which tied entries survive is whatever that sort's order is.

    python -c "import torch; from dusk.merge.sparsify import magnitude as m; print(m(torch.tensor([3., -1, 2]), 0.5))"
"""

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import torch

_HIGH_BINS = 1 << 15  # non-negative float32 bit patterns have 15 significant high bits
_LOW_BINS = 1 << 16
_BLOCK = 1 << 22  # elements per block: histograms and masks are built block by block, never tensor-sized
_BIG_SORT_BYTES = 256 * 1024**2  # sorts needing more scratch than this run one at a time (memory, not speed)
_BIG_SORT = threading.Lock()


def _magnitude_bits(flat: torch.Tensor) -> Iterator[torch.Tensor]:
    """|x| as float32 bit patterns (non-negative int32, ordered like the values), one block at a time."""
    for block in flat.split(_BLOCK):
        yield block.abs().float().view(torch.int32)


def _kth_largest_bits(flat: torch.Tensor, k: int) -> tuple[int, int]:
    """(t, #(bits >= t)) for t the k-th largest (1-based) |x| as float32 bits: a two-pass radix select over the
    16-bit halves (O(n), histograms only, scratch of one block)."""
    total = flat.numel()
    rank = total - k  # 0-based position of the answer in ascending order
    high = torch.zeros(_HIGH_BINS, dtype=torch.int64)
    for bits in _magnitude_bits(flat):
        high += torch.bincount(bits >> 16, minlength=_HIGH_BINS)
    below = high.cumsum(0)  # [b] = #(high half <= b)
    bucket = int(torch.searchsorted(below, rank, right=True))
    before = int(below[bucket - 1]) if bucket else 0
    low = torch.zeros(_LOW_BINS, dtype=torch.int64)
    lowest, highest = bucket << 16, (bucket + 1) << 16
    for bits in _magnitude_bits(flat):
        inside = bits[(bits >= lowest) & (bits < highest)]
        low += torch.bincount(inside - lowest, minlength=_LOW_BINS)
    below_low = low.cumsum(0)
    offset = int(torch.searchsorted(below_low, rank - before, right=True))
    at_least = total - before - (int(below_low[offset - 1]) if offset else 0)
    return lowest | offset, at_least


def magnitude_(delta: torch.Tensor, density: float) -> torch.Tensor:
    """In place: zero all but the k = max(1, int(density * numel)) largest |delta| (TIES trim); returns delta.

    The k kept are mergekit's: the first k of `argsort(|delta|, descending=True)`.
    """
    if density >= 1:
        return delta
    if density <= 0 or delta.numel() == 0:
        return delta.zero_()
    assert delta.is_contiguous()
    flat = delta.view(-1)
    k = max(1, int(density * flat.numel()))
    threshold, at_least = _kth_largest_bits(flat, k)
    if at_least == k:
        for block, bits in zip(flat.split(_BLOCK), _magnitude_bits(flat), strict=True):
            block.masked_fill_(bits < threshold, 0)
        return delta
    return _replay_argsort_(delta, k)


def _replay_argsort_(delta: torch.Tensor, k: int) -> torch.Tensor:
    """Entries tie at the threshold and only some fit: keep the first k of mergekit's argsort (its tie order).

    Sorting |delta| in place (`out=` itself) gives the same permutation as `argsort` with three fewer
    tensor-sized buffers; the k kept magnitudes go back to their positions, then the signs.
    """
    flat = delta.view(-1)
    big = flat.numel() * 12 > _BIG_SORT_BYTES  # scratch: order (8 bytes an entry), the sort's own (about 4)
    with _BIG_SORT if big else nullcontext():
        if delta.dtype != torch.float32:  # mergekit sorts float32 magnitudes: sort a float32 copy
            order = torch.argsort(flat.abs().float(), descending=True)
            flat[order[k:]] = 0
            return delta
        negative = flat.signbit()
        flat.abs_()
        order = torch.empty(flat.numel(), dtype=torch.int64)
        torch.sort(flat, descending=True, out=(flat, order))
        kept = flat[:k].clone()
        flat.zero_()
        flat[order[:k]] = kept
        del kept, order
    return delta.mul_(negative.view(delta.shape).to(delta.dtype).mul_(-2).add_(1))


def magnitude_all_(deltas: list[torch.Tensor], densities: list[float], rescale: bool = False) -> None:
    """magnitude_rescaled_ on each task vector, in parallel threads (torch releases the GIL; results do not
    depend on it)."""
    workers = min(len(deltas), os.cpu_count() or 1)
    if workers == 1:
        for delta, density in zip(deltas, densities, strict=True):
            magnitude_rescaled_(delta, density, rescale)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(magnitude_rescaled_, deltas, densities, [rescale] * len(deltas)))


def magnitude(delta: torch.Tensor, density: float) -> torch.Tensor:
    """delta * m, m = 1 on the k = max(1, int(density * numel)) largest |delta|, 0 elsewhere (a new tensor)."""
    return magnitude_(delta.clone(memory_format=torch.contiguous_format), density)


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


def magnitude_rescaled_(delta: torch.Tensor, density: float, rescale: bool) -> torch.Tensor:
    """magnitude_, then (if rescale and something was dropped) rescale_l1 against the untrimmed delta's L1 norm."""
    if not rescale or density >= 1:
        return magnitude_(delta, density)
    before = delta.abs().sum()
    magnitude_(delta, density)
    after = delta.abs().sum()
    if before >= 1e-7 and after >= 1e-7:
        delta.mul_(before / after)
    return delta


def outliers(delta: torch.Tensor, density: float, gamma: float, rescale: bool) -> torch.Tensor:
    """Model Breadcrumbs' trim: drop the gamma share of largest |delta| and then the smallest, keeping
    int(density * numel) entries (fewer outliers are dropped when both cannot fit); optionally rescale_l1.

    The kept ones are positions [n_bottom, n_bottom + kept) of the ascending sort of float32 |delta|, the same
    sort call as mergekit's so that ties fall the same way.
    """
    if density >= 1:
        return delta
    total = delta.numel()
    kept, top = int(density * total), int(gamma * total)
    bottom = max(0, total - kept - top)
    order = torch.sort(delta.abs().reshape(-1).float(), descending=False).indices
    mask = torch.zeros(total, dtype=delta.dtype)
    mask[order[bottom : bottom + kept]] = 1
    trimmed = delta * mask.reshape(delta.shape)
    return rescale_l1(delta, trimmed) if rescale else trimmed


def della(
    delta: torch.Tensor, density: float, epsilon: float, rescale: bool, generator: torch.Generator | None
) -> torch.Tensor:
    """DELLA's MagPrune: within each row, rank |delta| (1 = smallest); an entry of normalized rank r in [0, 1] is
    kept with probability density - epsilon + 2 * epsilon * r (Bernoulli draws from `generator`), then the
    kept ones are optionally rescaled to the L1 norm (rescale_l1). 1-D tensors are one row."""
    if density >= 1:
        return delta
    if density <= 0:
        return torch.zeros_like(delta)
    work = delta.dtype if delta.dtype == torch.bfloat16 else torch.float32
    rows = delta if delta.dim() >= 2 else delta.unsqueeze(0)
    order = torch.argsort(rows.abs(), dim=1)
    ranks = torch.empty_like(order).scatter_(1, order, torch.arange(rows.shape[1]).expand_as(order).contiguous())
    ranks = ranks.to(work) + 1
    lowest, highest = ranks.min(dim=1, keepdim=True).values, ranks.max(dim=1, keepdim=True).values
    normalized = ((ranks - lowest) / (highest - lowest)).clamp(0, 1)
    probabilities = (density - epsilon) + normalized * 2 * epsilon
    mask = torch.bernoulli(probabilities, generator=generator).to(work)
    source = rows.to(work)
    kept = source * mask
    return (rescale_l1(source, kept) if rescale else kept).to(delta.dtype).reshape(delta.shape)
