"""Merge methods on the hypersphere beyond two-model SLERP: NuSLERP, Multi-SLERP and the Karcher mean.

Each follows mergekit 0.1.5's arithmetic step for step (same operations, same dtypes: these compute in the
inputs' dtype, except the Karcher mean's norms, which are float32), so outputs are bit-equal to mergekit's in
float32, float16 and bfloat16 when both run single-threaded.

    dusk merge a b --method nuslerp --weights 0.6,0.4 --out runs/nu
"""

import torch

from dusk.errors import DuskError
from dusk.merge.registry import WEIGHT, Group, Param, register

NUSLERP_EPS = 1e-8


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / torch.norm(x, dim=-1, keepdim=True).clamp(min=1e-7)


def spherical_rows(t: float, v0: torch.Tensor, v1: torch.Tensor, row_wise: bool, flatten: bool) -> torch.Tensor:
    """SLERP of v0 and v1 at t along the last dim (each row its own sphere), along dim 0 (row_wise), or of the
    whole flattened tensors (flatten); linear where the two are (anti)parallel."""
    shape = v0.shape
    if flatten:
        v0, v1 = v0.reshape(-1), v1.reshape(-1)
    elif row_wise:
        v0, v1 = v0.transpose(0, -1), v1.transpose(0, -1)
    cos = torch.sum(_unit(v0) * _unit(v1), dim=-1, keepdim=True).clamp(-1, 1)
    collinear = (1 - cos.square()) <= NUSLERP_EPS**2
    theta = torch.acos(torch.where(collinear, 0, cos))
    spherical = (torch.sin((1 - t) * theta) * v0 + torch.sin(t * theta) * v1) / torch.sin(theta)
    out = torch.where(collinear, (1 - t) * v0 + t * v1, spherical)
    if row_wise and not flatten:
        out = out.transpose(0, -1)
    return out.reshape(shape)


@register(
    "nuslerp",
    (
        Param("weight", float, "non_base", help=WEIGHT),
        Param("nuslerp_row_wise", bool, "shared", False, "interpolate columns (dim 0) instead of rows"),
        Param("nuslerp_flatten", bool, "shared", True, "treat the whole tensor as one vector"),
    ),
    takes_base=True,
    min_non_base=2,
    max_non_base=2,
    reference="https://github.com/arcee-ai/mergekit (NuSLERP)",
)
def nuslerp(group: Group, weight: list[float], nuslerp_row_wise: bool, nuslerp_flatten: bool) -> torch.Tensor:
    """NuSLERP: SLERP of the two non-base models (or, with a base, of their task vectors x_i - base, added back
    to the base) at t = w_2 / (w_1 + w_2) (0.5 when the weights sum to ~0), per row, per column or flattened."""
    first, second = (group.tensor(i) for i in group.others)
    total = sum(weight)
    t = 0.5 if abs(total) < 1e-6 else weight[1] / total
    if group.base is None:
        return spherical_rows(t, first, second, nuslerp_row_wise, nuslerp_flatten)
    base = group.tensor(group.base)
    return base + spherical_rows(t, first - base, second - base, nuslerp_row_wise, nuslerp_flatten)


@register(
    "multislerp",
    (
        Param("weight", float, "non_base", help=WEIGHT),
        Param("normalize_weights", bool, "shared", True, "divide the weights by their sum"),
        Param("eps", float, "shared", 1e-8, "small constant for numerical stability"),
    ),
    takes_base=True,
    min_non_base=1,
    reference="https://goddard.blog/posts/multislerp-wow-what-a-cool-idea",
)
def multislerp(group: Group, weight: list[float], normalize_weights: bool, eps: float) -> torch.Tensor:
    """Multi-SLERP: barycentric interpolation on the sphere. The inputs (task vectors x_i - base with a base) are
    scaled to unit length, their weighted mean m is normalized, the units are mapped to m's tangent space,
    averaged with the weights, mapped back with the exponential map, and scaled by the weighted mean norm."""
    others = [group.tensor(i) for i in group.others]
    if len(others) == 1:
        return others[0]
    base = group.tensor(group.base) if group.base is not None else None
    stacked = torch.stack(others)
    if base is not None:
        stacked -= base
    flat = stacked.view(len(others), -1)
    w = torch.tensor(weight, dtype=stacked.dtype)
    if normalize_weights:
        w = w / w.sum()
    norms = torch.norm(flat, dim=-1, keepdim=True)
    units = flat / (norms + eps)
    mean = (units * w.view(-1, 1)).sum(0)
    mean_norm = torch.norm(mean)
    if mean_norm < eps:
        if len(others) != 2:
            raise DuskError(
                f"{group.name}: multislerp: the weighted mean of the inputs' directions is zero (opposite inputs "
                "whose weights cancel); change the weights"
            )
        out = (stacked[0] * w[0] + stacked[1] * w[1]).view(stacked.shape[1:])
        return out if base is None else out + base
    mean = mean / mean_norm
    tangents = units - (units * mean).sum(-1, keepdim=True) * mean
    tangent = (tangents * w.view(-1, 1)).sum(0)
    length = torch.norm(tangent) + eps
    out = mean * torch.cos(length) + tangent * (torch.sin(length) / length)
    out = (out * (norms.squeeze(-1) * w).sum()).view(stacked.shape[1:])
    return out if base is None else out + base


def _norm(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.linalg.vector_norm(x.to(dtype))


def _karcher_step(mean: torch.Tensor, units: list[torch.Tensor], alphas: list[float], tol: float) -> torch.Tensor:
    """The weighted sum of the log maps of the units at `mean` (the Riemannian gradient direction)."""
    tangent = torch.zeros_like(mean)
    for alpha, unit in zip(alphas, units, strict=True):
        dot = torch.clamp(torch.dot(mean.flatten(), unit.flatten()), -1.0, 1.0)
        theta = torch.arccos(dot)
        if not theta.item() < tol:  # (a NaN angle counts, as in mergekit)
            tangent += alpha * (theta / torch.sin(theta)) * (unit - dot * mean)
    return tangent


@register(
    "karcher",
    (
        Param("max_iter", int, "shared", 10, "most iterations of the Riemannian mean"),
        Param("tol", float, "shared", 1e-5, "stop when the step's norm is below this"),
    ),
    reference="https://arxiv.org/abs/2603.04972",
)
def karcher(group: Group, max_iter: int, tol: float) -> torch.Tensor:
    """Karcher mean: the point on the unit sphere minimizing the (equal-weight) sum of squared geodesic distances
    to the inputs' directions, found by up to max_iter Riemannian gradient steps, scaled by the mean input norm.
    Every input counts (a base model is just one more input)."""
    tensors = group.tensors
    if len(tensors) == 1:
        return tensors[0]
    dtype = torch.float64 if tensors[0].dtype == torch.float64 else torch.float32
    alphas = [1.0 / len(tensors)] * len(tensors)
    norms = [_norm(x, dtype) for x in tensors]
    pairs = zip(tensors, norms, strict=True)
    units = [torch.zeros_like(x) if n.item() == 0.0 else (x / n).to(x.dtype) for x, n in pairs]
    valid = [i for i, n in enumerate(norms) if n.item() > tol]
    if not valid:
        return sum(x * 0 for x in tensors)
    total = sum(alphas[i] for i in valid)
    weights = [alphas[i] / total for i in valid]
    kept = [units[i] for i in valid]
    mean = torch.zeros_like(kept[0])
    for alpha, unit in zip(weights, kept, strict=True):
        mean += alpha * unit
    length = _norm(mean, dtype)
    mean = kept[0].clone() if length.item() < tol else (mean / length).to(mean.dtype)
    for _ in range(max_iter):
        tangent = _karcher_step(mean, kept, weights, tol)
        length = _norm(tangent, dtype)
        if length.item() < tol:
            break
        mean = (torch.cos(length) * mean + torch.sin(length) * (tangent / length)).to(mean.dtype)
        size = _norm(mean, dtype)
        if size.item() > tol:
            mean = (mean / size).to(mean.dtype)
    return sum(alpha * norm for alpha, norm in zip(alphas, norms, strict=True)) * mean
