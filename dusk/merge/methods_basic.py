"""The basic merge methods (mergekit 0.1.5's semantics): linear, the task-arithmetic family (task arithmetic, TIES,
DARE, breadcrumbs, DELLA), SLERP and passthrough, as pure functions over one `Group` of input tensors.

    python -c "from dusk.merge import methods_basic; print(methods_basic.linear.__doc__)"
"""

from typing import Any, Literal

import torch

from dusk.errors import DuskError
from dusk.merge import sparsify
from dusk.merge.registry import WEIGHT, Group, Param, register


@register(
    "linear",
    (Param("weight", float, "input", help=WEIGHT), Param("normalize", bool, "shared", True, "divide by sum(w)")),
    elementwise=True,
    reference="https://arxiv.org/abs/2203.05482",
)
def linear(group: Group, weight: list[float], normalize: bool) -> torch.Tensor:
    """out = sum_i w_i * x_i / sum_i w_i (the division only if normalize), computed in float32 (float64 stays)."""
    first = group.tensor(0)
    if not first.is_floating_point():
        raise DuskError(f"{group.name}: linear merging needs floating-point tensors, got {first.dtype}")
    dtype = torch.float64 if first.dtype == torch.float64 else torch.float32
    weights = torch.tensor(weight, dtype=torch.float64).to(dtype)
    result = torch.zeros_like(first, dtype=dtype)
    for index, coefficient in enumerate(weights):
        result.addcmul_(first if index == 0 else group.tensor(index), coefficient)
    if normalize:
        result.div_(weights.sum())
    return result.to(first.dtype)


def _task_arithmetic_params(normalize: bool, rescale: bool, *extra: Param) -> tuple[Param, ...]:
    return (
        Param("weight", float, "non_base", help=WEIGHT),
        Param("density", float, "non_base", 1.0, "fraction of each task vector kept, in (0, 1]"),
        Param("normalize", bool, "shared", normalize, "divide by the sum of the weights that took part"),
        Param("rescale", bool, "shared", rescale, "rescale kept entries to the task vector's L1 norm"),
        Param("lambda", float, "shared", 1.0, "scale of the merged task vector"),
        Param("int8_mask", bool, "shared", False, "store sign masks as int8 (memory only; same result)"),
        *extra,
    )


Sparsification = Literal["magnitude", "random", "outliers", "della"]


def _sparsify_one(kind: Sparsification, delta: torch.Tensor, slot: int, group: Group, p: dict) -> torch.Tensor:
    """Trim one task vector (slot `slot` among the non-base inputs) the way `kind` does."""
    density = p["density"][slot]
    if kind == "random":
        return sparsify.bernoulli(delta, density, p["rescale"], group.generator)
    if kind == "outliers":
        return sparsify.outliers(delta, density, p["gamma"][slot], p["rescale"])
    return sparsify.della(delta, density, p["epsilon"][slot], p["rescale"], group.generator)


def generalized_task_arithmetic(
    group: Group,
    sparsification: Sparsification | None,
    consensus: bool,
    **p: Any,
) -> torch.Tensor:
    """base + lambda * sum_i m_i * w_i * s(x_i - base) / D, the shared body of task arithmetic, TIES, DARE,
    Breadcrumbs and DELLA.

    s: keep everything, the top-density magnitudes (TIES), a random density fraction (DARE), the magnitudes
    between the gamma largest and the smallest (Breadcrumbs) or a rank-weighted random fraction (DELLA), each
    rescaled to the task vector's L1 norm when rescale is set;
    m_i: 1, or (TIES sign election) 1 where sign(w_i d_i) equals sign(sum_j w_j d_j) (0 counts as +);
    D: sum_i m_i * w_i when normalize (1 where that is 0), else 1.
    """
    base = group.tensor(group.base)
    others = group.others
    if not others:
        return base
    deltas = base.new_empty((len(others), *base.shape))
    for slot, index in enumerate(others):
        torch.sub(group.tensor(index), base, out=deltas[slot])  # the input itself is not kept
    if sparsification is not None:
        del base  # not needed while trimming (the largest scratch); read again after
        if sparsification == "magnitude":  # deterministic: the models' trims run in parallel threads
            trims = [deltas[slot] for slot in range(len(others))]
            sparsify.magnitude_all_(trims, p["density"], p["rescale"])
        else:  # in order: one generator for the random ones
            for slot in range(len(others)):
                deltas[slot] = _sparsify_one(sparsification, deltas[slot], slot, group, p)
        base = group.tensor(group.base)
    deltas.mul_(torch.tensor(p["weight"], dtype=deltas.dtype).reshape(-1, *([1] * base.dim())))
    out = torch.empty_like(base)
    for rows in _row_blocks(base):
        out[rows] = base[rows] + _mix(deltas[(slice(None), rows)], p["weight"], consensus, p["normalize"], p["lambda"])
    return out


def _row_blocks(tensor: torch.Tensor, elements: int = 1 << 20) -> list:
    """Index blocks of about `elements` along dim 0 (elementwise steps run block by block to bound scratch)."""
    if tensor.dim() == 0:
        return [...]
    step = max(1, elements // max(1, tensor[0].numel()))
    return [slice(start, start + step) for start in range(0, tensor.shape[0], step)]


def sign_agreement(deltas: torch.Tensor) -> torch.Tensor:
    """TIES's sign election over dim 0: True where sign(d_i) equals s = +1 if sum_i d_i >= 0 else -1 (0 never)."""
    positive = deltas.sum(dim=0) >= 0
    return torch.where(positive, deltas > 0, deltas < 0)


def _mix(deltas: torch.Tensor, weights: list[float], consensus: bool, normalize: bool, lam: float) -> torch.Tensor:
    """lambda * sum_i m_i d_i / D for one block of the (already weighted) task vectors d_i.

    With consensus, m_i = [sign(d_i) == s], s = +1 where sum_i d_i >= 0 else -1 (a zero d_i never agrees).
    Each sum over the models is one tensor reduction (torch accumulates half precision in float32 and rounds once),
    as mergekit does: adding the models one at a time would round after every add.
    """
    coefficients = torch.tensor(weights, dtype=deltas.dtype).reshape(-1, *([1] * (deltas.dim() - 1)))
    if consensus:
        agree = sign_agreement(deltas)
        mixed = (deltas * agree).sum(dim=0)
        divisor = (coefficients * agree).sum(dim=0)
        divisor[divisor == 0] = 1
    else:
        mixed = deltas.sum(dim=0)
        divisor = coefficients.sum(dim=0)
        divisor[divisor.abs() < 1e-8] = 1
    if normalize:
        mixed /= divisor
    if lam != 1:
        mixed *= lam
    return mixed


@register("task_arithmetic", _task_arithmetic_params(False, False), needs_base=True, elementwise=True,
          reference="https://arxiv.org/abs/2212.04089")  # fmt: skip
def task_arithmetic(group: Group, **p: Any) -> torch.Tensor:
    """out = base + lambda * sum_i w_i (x_i - base) [/ sum_i w_i if normalize] (Ilharco et al. 2023)."""
    return generalized_task_arithmetic(group, None, False, **p)


@register("ties", _task_arithmetic_params(True, False), needs_base=True, reference="https://arxiv.org/abs/2306.01708")
def ties(group: Group, **p: Any) -> torch.Tensor:
    """TIES (Yadav et al. 2023): d_i = w_i * top_density(x_i - base); elect sign s = sign(sum_i d_i);
    out = base + lambda * sum_i [sign d_i = s] d_i / sum_i [sign d_i = s] w_i (division if normalize)."""
    return generalized_task_arithmetic(group, "magnitude", True, **p)


@register("dare_ties", _task_arithmetic_params(False, True), needs_base=True, random=True,
          reference="https://arxiv.org/abs/2311.03099")  # fmt: skip
def dare_ties(group: Group, **p: Any) -> torch.Tensor:
    """DARE + TIES (Yu et al. 2023): d_i = w_i * rescale(Bernoulli(density) * (x_i - base)), then TIES's sign
    election and disjoint sum; rescale multiplies kept entries by |x_i - base|_1 / |kept|_1 (about 1/density)."""
    return generalized_task_arithmetic(group, "random", True, **p)


@register("dare_linear", _task_arithmetic_params(False, True), needs_base=True, random=True,
          reference="https://arxiv.org/abs/2311.03099")  # fmt: skip
def dare_linear(group: Group, **p: Any) -> torch.Tensor:
    """DARE (Yu et al. 2023): out = base + lambda * sum_i w_i * rescale(Bernoulli(density) * (x_i - base))."""
    return generalized_task_arithmetic(group, "random", False, **p)


BREADCRUMBS_GAMMA = Param("gamma", float, "non_base", 0.01, "share of largest |delta| dropped")


@register(
    "breadcrumbs",
    _task_arithmetic_params(False, False, BREADCRUMBS_GAMMA),
    needs_base=True,
    reference="https://arxiv.org/abs/2312.06795",
)
def breadcrumbs(group: Group, **p: Any) -> torch.Tensor:
    """Model Breadcrumbs (Davari & Belilovsky 2023): d_i = w_i * trim(x_i - base), trim keeping int(density * n)
    entries after dropping the gamma * n largest |delta| (and the smallest); out = base + lambda * sum_i d_i
    [/ sum_i w_i if normalize]. With density 1 nothing is dropped (gamma is then unused)."""
    return generalized_task_arithmetic(group, "outliers", False, **p)


@register(
    "breadcrumbs_ties",
    _task_arithmetic_params(False, False, BREADCRUMBS_GAMMA),
    needs_base=True,
    reference="https://arxiv.org/abs/2312.06795",
)
def breadcrumbs_ties(group: Group, **p: Any) -> torch.Tensor:
    """Breadcrumbs' trim, then TIES's sign election and disjoint sum (see breadcrumbs and ties)."""
    return generalized_task_arithmetic(group, "outliers", True, **p)


DELLA_EPSILON = Param("epsilon", float, "non_base", 0.15, "keep probability spread: density +/- epsilon by rank")


@register("della", _task_arithmetic_params(True, True, DELLA_EPSILON), needs_base=True, random=True,
          reference="https://arxiv.org/abs/2406.11617")  # fmt: skip
def della(group: Group, **p: Any) -> torch.Tensor:
    """DELLA (Deep et al. 2024): MagPrune keeps each entry of x_i - base with probability density - epsilon +
    2 epsilon * r (r its magnitude rank within its row, scaled to [0, 1]) and rescales to the L1 norm; then TIES's
    sign election and disjoint mean. Random: the draws come from the merge's seed."""
    return generalized_task_arithmetic(group, "della", True, **p)


@register("della_linear", _task_arithmetic_params(False, True, DELLA_EPSILON), needs_base=True, random=True,
          reference="https://arxiv.org/abs/2406.11617")  # fmt: skip
def della_linear(group: Group, **p: Any) -> torch.Tensor:
    """DELLA's MagPrune (see della) without sign election: out = base + lambda * sum_i w_i * prune(x_i - base)."""
    return generalized_task_arithmetic(group, "della", False, **p)


SLERP_CHUNK = 1 << 20  # elements per chunk of SLERP's float32 scratch (mergekit's chunk for one tensor)


def _flat_norms(x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype, chunk: int = SLERP_CHUNK):
    """(|x|, |y|, <x/|x|, y/|y|>) over all elements, in `dtype`, chunked so scratch stays small.

    Each statistic is reduced per chunk and the chunks' results are combined by one tensor reduction (the norm of
    the chunk norms, the sum of the chunk dots), so the rounding is the same as mergekit's for any tensor size.
    """
    a, b = x.reshape(1, -1), y.reshape(1, -1)
    starts = range(0, a.shape[1], chunk)

    def norm(v: torch.Tensor) -> torch.Tensor:
        parts = [torch.linalg.vector_norm(v[:, i : i + chunk].to(dtype), dim=1, keepdim=True) for i in starts]
        total = torch.linalg.vector_norm(torch.stack(parts), dim=0)
        return torch.where(total > 1e-8, total, 1)

    norm_a, norm_b = norm(a), norm(b)
    dots = [
        ((a[:, i : i + chunk].to(dtype) / norm_a) * (b[:, i : i + chunk].to(dtype) / norm_b)).sum(dim=1, keepdim=True)
        for i in starts
    ]
    return norm_a, norm_b, torch.stack(dots).sum(dim=0).clamp(-1, 1).reshape(())


@register("slerp", (Param("t", float, "shared", help="0 = base model, 1 = the other model"),), needs_base=True,
          min_inputs=2, max_inputs=2, reference="https://en.wikipedia.org/wiki/Slerp")  # fmt: skip
def slerp(group: Group, t: float) -> torch.Tensor:
    """Spherical interpolation between the base v0 and the other model v1, each tensor flattened to a vector:
    theta = acos(<v0/|v0|, v1/|v1|>); out = sin((1-t) theta)/sin(theta) v0 + sin(t theta)/sin(theta) v1,
    falling back to (1-t) v0 + t v1 when |cos theta| > 0.9995 (nearly collinear)."""
    v0, v1 = group.tensor(group.base), group.tensor(group.others[0])
    if not v0.is_floating_point():
        raise DuskError(f"{group.name}: slerp needs floating-point tensors, got {v0.dtype}")
    dtype = torch.float64 if v0.dtype == torch.float64 else torch.float32
    tt = torch.tensor(t, dtype=torch.float64).to(dtype)
    if v0.numel() == 0:
        return v0.clone()
    _na, _nb, dot = _flat_norms(v0, v1, dtype)
    if dot.abs() > 0.9995:
        coef_a, coef_b = 1 - tt, tt
    else:
        theta = torch.acos(dot)
        coef_a, coef_b = torch.sin((1 - tt) * theta) / torch.sin(theta), torch.sin(tt * theta) / torch.sin(theta)
    return (coef_a * v0.to(dtype) + coef_b * v1.to(dtype)).to(v0.dtype)


@register(
    "passthrough",
    (Param("scale", float | None, "input", None, "multiply the tensor by this factor"),),
    max_inputs=1,
    elementwise=True,
)
def passthrough(group: Group, scale: list[float | None]) -> torch.Tensor:
    """out = x (times scale, if given): copies one model's tensor; with slices, stacks layers (DUS)."""
    tensor = group.tensor(0)
    return tensor if scale[0] is None else tensor * scale[0]


# The other method families register themselves on import (they need `register` from this module).
