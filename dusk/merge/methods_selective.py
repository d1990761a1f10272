"""Merge methods that choose, per element or per tensor, how much of each model to take: Model Stock, SCE,
NearSwap, Arcee Fusion, RAM and RAM+ (tensor-local).

Each follows mergekit 0.1.5's arithmetic step for step, in the inputs' dtype (same operations, same type
promotions), so outputs are bit-equal to mergekit's in float32, float16 and bfloat16. Where mergekit's result is
promoted to float32 (Arcee Fusion's float mask, RAM+'s float32 scales), dusk writes the merge's dtype, which is
mergekit's output cast to it.

    dusk merge merge.yaml --out runs/stock   # merge_method: model_stock, base_model: ..., 2+ fine-tunes
"""

import torch
import torch.nn.functional as F

from dusk.merge.methods_basic import sign_agreement
from dusk.merge.registry import Group, Param, register


@register(
    "model_stock",
    (Param("filter_wise", bool, "shared", False, "one ratio per row instead of per tensor"),),
    needs_base=True,
    min_inputs=3,
    reference="https://arxiv.org/abs/2403.19522",
)
def model_stock(group: Group, filter_wise: bool) -> torch.Tensor:
    """Model Stock (Jang et al. 2024): cos = mean pairwise cosine of the fine-tunes' task vectors (per tensor, or
    per row with filter_wise); t = N cos / (1 + (N - 1) cos) (0 where that denominator is ~0);
    out = t * mean_i x_i + (1 - t) * base."""
    base = group.tensor(group.base)
    tuned = [group.tensor(i) for i in group.others]
    shape = base.shape
    if not filter_wise:
        base, tuned = base.reshape(-1), [x.reshape(-1) for x in tuned]
    elif base.dim() == 1:
        base, tuned = base.unsqueeze(0), [x.unsqueeze(0) for x in tuned]
    offsets = [x - base for x in tuned]
    cosines = []
    for i, a in enumerate(offsets):
        for b in offsets[i + 1 :]:
            norms = torch.norm(a, dim=-1) * torch.norm(b, dim=-1)
            cosines.append(((a * b).sum(dim=-1) / norms.clamp(min=1e-6)).clamp(-1, 1))
    cos = torch.stack(cosines).mean(dim=0).unsqueeze(-1)
    count = len(tuned)
    denominator = 1 + (count - 1) * cos
    singular = denominator.abs() < 1e-6
    safe = torch.where(singular, torch.ones_like(denominator), denominator)
    ratio = torch.where(singular, torch.zeros_like(cos), (count * cos) / safe)
    return (ratio * (sum(tuned) / count) + (1 - ratio) * base).reshape(shape)


def _variance_mask(deltas: torch.Tensor, share: float) -> torch.Tensor:
    """1 on the int(share * #nonzero) entries whose variance across the models is largest, 0 elsewhere."""
    if share <= 0:
        return torch.zeros_like(deltas[0])
    variance = torch.var(deltas, dim=0, unbiased=False)
    k = int(torch.count_nonzero(variance) * share)
    mask = torch.zeros_like(variance)
    if k:
        mask.view(-1)[torch.topk(variance.abs().view(-1), k=k, largest=True).indices] = 1
    return mask


@register(
    "sce",
    (
        Param("select_topk", float, "shared", 1.0, "share of entries kept: those varying most across models"),
        Param("int8_mask", bool, "shared", False, "store masks as int8 (memory only; same result)"),
    ),
    needs_base=True,
    reference="https://arxiv.org/abs/2408.07990",
)
def sce(group: Group, select_topk: float, int8_mask: bool) -> torch.Tensor:
    """SCE (Wan et al. 2024): Select the select_topk share of entries with the largest variance across the task
    vectors d_i = x_i - base; Calculate weights w_i = mean(d_i^2) / sum_j mean(d_j^2); Erase entries whose sign
    disagrees with the elected sign (as TIES); out = base + sum_i w_i m_i d_i / max(sum_i w_i m_i, 1e-6)."""
    base = group.tensor(group.base)
    if not group.others:
        return base
    deltas = torch.stack([group.tensor(i) - base for i in group.others])
    if select_topk < 1:
        deltas = deltas * _variance_mask(deltas, select_topk).unsqueeze(0)
    agree = sign_agreement(deltas)
    energy = deltas.square().reshape(len(deltas), -1).mean(dim=1)
    total = torch.sum(energy).item()
    weights = torch.ones_like(energy) / len(energy) if abs(total) < 1e-6 else energy / total
    weights = (weights.reshape(-1, *([1] * (deltas.dim() - 1)))) * agree
    return base + (deltas * weights).sum(dim=0) / torch.sum(weights, dim=0).clamp(min=1e-6)


@register(
    "nearswap",
    (Param("t", float, "shared", help="distance below which the other model's value is taken entirely"),),
    needs_base=True,
    min_inputs=2,
    max_inputs=2,
    elementwise=True,
    reference="https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001",
)
def nearswap(group: Group, t: float) -> torch.Tensor:
    """NearSwap: where base and other are close, take the other: w = clamp(t / max(|a - b|, 1e-6), 0, 1);
    out = w * b + (1 - w) * a (a the base, b the other model)."""
    a, b = group.tensor(group.base), group.tensor(group.others[0])
    weight = (t / torch.abs(a - b).clamp(min=1e-6)).clamp(min=0, max=1)
    return weight * b + (1 - weight) * a


FUSION_SAMPLE = 1_000_000


def _fusion_threshold(importance: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """median + 1.5 * (q3 - q1) of the importance scores (of a random sample of FUSION_SAMPLE, drawn with
    replacement from `generator`, when there are more)."""
    flat = importance.reshape(-1)
    if flat.numel() > FUSION_SAMPLE:
        flat = flat[torch.randint(flat.numel(), (FUSION_SAMPLE,), generator=generator)]
    ordered = torch.sort(flat).values
    q1, median, q3 = ordered[(torch.tensor([0.25, 0.5, 0.75]) * (ordered.numel() - 1)).long()]
    return median + 1.5 * (q3 - q1)


@register("arcee_fusion", (), needs_base=True, min_inputs=2, max_inputs=2, random=True, reference="https://arcee.ai")
def arcee_fusion(group: Group) -> torch.Tensor:
    """Arcee Fusion: importance = |b - a| * KL(softmax(b) || softmax(a)) (softmax and KL along the last dim, each
    probability + 1e-8); take b's value where importance >= median + 1.5 IQR, else a's (a the base). Random only
    for tensors over 1M entries, whose quartiles come from a seeded sample of 1M entries (as in mergekit)."""
    a, b = group.tensor(group.base), group.tensor(group.others[0])
    p = F.softmax(b, dim=-1) + 1e-8
    q = F.softmax(a, dim=-1) + 1e-8
    importance = (b - a).abs() * torch.sum(p * torch.log(p / q), dim=-1, keepdim=True)
    mask = (importance >= _fusion_threshold(importance, group.generator)).float()
    return a + (b - a) * mask


def _ram_masks(group: Group, epsilon: float):
    """(base, flat task vectors zeroed where |d| <= epsilon, which of those are nonzero, #models moving each entry)."""
    base = group.tensor(group.base)
    flat = torch.stack([group.tensor(i) - base for i in group.others]).view(len(group.others), -1)
    moving = flat.abs() > epsilon
    return base, flat * moving, moving, moving.sum(dim=0, keepdim=True)


RAM_EPSILON = Param("epsilon", float, "shared", 1e-5, "a task vector entry counts when |d| > epsilon")


@register("ram", (RAM_EPSILON,), needs_base=True, elementwise=True, reference="https://arxiv.org/abs/2601.13572")
def ram(group: Group, epsilon: float) -> torch.Tensor:
    """RAM (Reinforced Agent Merging): per entry, the task vectors that move it (|d_i| > epsilon) are averaged:
    out = base + sum_i d_i [moving_i] / max(1, #moving), a lone mover kept whole."""
    if not group.others:
        return group.tensor(group.base)
    base, kept, _moving, counts = _ram_masks(group, epsilon)
    merged = ((kept * (counts == 1)) + (kept * (counts > 1) / counts.clamp(min=1))).sum(dim=0, keepdim=True)
    return base + merged.reshape_as(base)


@register(
    "ramplus_tl",
    (
        Param("r", float, "shared", 0.1, "strength of the boost of unique entries"),
        Param("alpha", float, "shared", 0.2, "cap on the shared/unique ratio"),
        RAM_EPSILON,
    ),
    needs_base=True,
    reference="https://arxiv.org/abs/2601.13572",
)
def ramplus_tl(group: Group, r: float, alpha: float, epsilon: float) -> torch.Tensor:
    """RAM+ (tensor-local): as RAM, but each model's unique entries are scaled by 1 + r * clamp(rho, 0, alpha),
    rho = (its shared entries) / (its unique entries) within this tensor."""
    if not group.others:
        return group.tensor(group.base)
    base, kept, moving, counts = _ram_masks(group, epsilon)
    shared, unique = counts > 1, counts == 1
    rho = (moving & shared).sum(dim=1) / (moving & unique).sum(dim=1).clamp(min=epsilon)
    boost = 1 + r * rho.clamp(min=0, max=alpha)
    merged = ((kept * unique * boost.unsqueeze(-1)) + (kept * shared / counts.clamp(min=1))).sum(dim=0, keepdim=True)
    return base + merged.reshape_as(base)
