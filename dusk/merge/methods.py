"""Merge methods: pure functions over one tensor from each input model, registered by name with their parameters.

Each method sees a `Group` (the inputs' tensors for one output tensor, in config order, and which one is the
base) plus its resolved parameters as keyword arguments; per-model parameters arrive as lists aligned with the
models they apply to (every input, or every non-base input). The semantics follow mergekit 0.1.5 exactly, so the
same config gives the same numbers (within float rounding).

    python -c "from dusk.merge.methods import METHODS; print(sorted(METHODS))"
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from dusk.errors import DuskError
from dusk.merge import sparsify

Scope = Literal["shared", "input", "non_base"]
REQUIRED = object()


@dataclass(frozen=True)
class Param:
    """One parameter a method reads: its name, value type, which models it is given per, and its default."""

    name: str
    kind: Any  # float, bool or float | None (validated with pydantic, as mergekit does)
    scope: Scope
    default: Any = REQUIRED
    help: str = ""


Loader = Callable[[], torch.Tensor]


@dataclass(frozen=True)
class Group:
    """The inputs of one output tensor, in config order (tensors, or loaders read on use), the base's index."""

    inputs: list[torch.Tensor | Loader]
    base: int | None
    name: str = ""
    generator: torch.Generator | None = None

    def tensor(self, index: int) -> torch.Tensor:
        """Input `index` (read now if it is a loader; not kept, so methods hold only what they use)."""
        item = self.inputs[index]
        return item if isinstance(item, torch.Tensor) else item()

    @property
    def tensors(self) -> list[torch.Tensor]:
        return [self.tensor(i) for i in range(len(self.inputs))]

    @property
    def others(self) -> list[int]:
        """Indices of the non-base inputs."""
        return [i for i in range(len(self.inputs)) if i != self.base]


@dataclass(frozen=True)
class MergeMethod:
    """A registered method: its function, parameters and input contract."""

    name: str
    fn: Callable[..., torch.Tensor]
    params: tuple[Param, ...]
    needs_base: bool
    min_inputs: int = 1
    max_inputs: int | None = None
    elementwise: bool = False  # output element i depends only on input elements i (so rows can be chunked)
    random: bool = False
    doc: str = field(default="", repr=False)

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    @property
    def param_names(self) -> list[str]:
        return sorted(p.name for p in self.params)


METHODS: dict[str, MergeMethod] = {}


def register(name: str, params: tuple[Param, ...], needs_base: bool = False, **contract: Any):
    """Decorator: register `fn` as merge method `name` (duplicate names are an error)."""

    def decorator(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        if name in METHODS:
            raise ValueError(f"merge method {name!r} is already registered")
        METHODS[name] = MergeMethod(name, fn, params, needs_base, doc=fn.__doc__ or "", **contract)
        return fn

    return decorator


def get_method(name: str) -> MergeMethod:
    if name not in METHODS:
        raise DuskError(f"unknown merge method {name!r}; known methods: {', '.join(sorted(METHODS))}")
    return METHODS[name]


WEIGHT = "relative weight of this model"


@register(
    "linear",
    (Param("weight", float, "input", help=WEIGHT), Param("normalize", bool, "shared", True, "divide by sum(w)")),
    elementwise=True,
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


def _task_arithmetic_params(normalize: bool, rescale: bool) -> tuple[Param, ...]:
    return (
        Param("weight", float, "non_base", help=WEIGHT),
        Param("density", float, "non_base", 1.0, "fraction of each task vector kept, in (0, 1]"),
        Param("normalize", bool, "shared", normalize, "divide by the sum of the weights that took part"),
        Param("rescale", bool, "shared", rescale, "DARE: rescale kept entries to the task vector's L1 norm"),
        Param("lambda", float, "shared", 1.0, "scale of the merged task vector"),
        Param("int8_mask", bool, "shared", False, "store sign masks as int8 (memory only; same result)"),
    )


def generalized_task_arithmetic(
    group: Group,
    sparsification: Literal["magnitude", "random"] | None,
    consensus: bool,
    **p: Any,
) -> torch.Tensor:
    """base + lambda * sum_i m_i * w_i * s(x_i - base) / D, the shared body of task arithmetic, TIES and DARE.

    s: keep everything, the top-density magnitudes (TIES) or a random density fraction (DARE, rescaled by L1);
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
            sparsify.magnitude_all_([deltas[slot] for slot in range(len(others))], p["density"])
        for slot in range(len(others) if sparsification == "random" else 0):  # in order: one generator
            deltas[slot] = sparsify.bernoulli(deltas[slot], p["density"][slot], p["rescale"], group.generator)
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


def _mix(deltas: torch.Tensor, weights: list[float], consensus: bool, normalize: bool, lam: float) -> torch.Tensor:
    """lambda * sum_i m_i d_i / D for one block of the (already weighted) task vectors d_i.

    With consensus, m_i = [sign(d_i) == s], s = +1 where sum_i d_i >= 0 else -1 (a zero d_i never agrees).
    """
    coefficients = torch.tensor(weights, dtype=deltas.dtype)
    if consensus:
        positive = deltas.sum(dim=0) >= 0
        mixed = torch.zeros_like(deltas[0])
        divisor = torch.zeros_like(deltas[0])
        for delta, weight in zip(deltas, coefficients, strict=True):
            agree = torch.where(positive, delta > 0, delta < 0)
            mixed += torch.where(agree, delta, 0)
            divisor += agree * weight
        divisor[divisor == 0] = 1
    else:
        mixed = deltas.sum(dim=0)
        divisor = coefficients.sum()
        divisor = torch.where(divisor.abs() < 1e-8, 1, divisor)
    if normalize:
        mixed /= divisor
    if lam != 1:
        mixed *= lam
    return mixed


@register("task_arithmetic", _task_arithmetic_params(False, False), needs_base=True, elementwise=True)
def task_arithmetic(group: Group, **p: Any) -> torch.Tensor:
    """out = base + lambda * sum_i w_i (x_i - base) [/ sum_i w_i if normalize] (Ilharco et al. 2023)."""
    return generalized_task_arithmetic(group, None, False, **p)


@register("ties", _task_arithmetic_params(True, False), needs_base=True)
def ties(group: Group, **p: Any) -> torch.Tensor:
    """TIES (Yadav et al. 2023): d_i = w_i * top_density(x_i - base); elect sign s = sign(sum_i d_i);
    out = base + lambda * sum_i [sign d_i = s] d_i / sum_i [sign d_i = s] w_i (division if normalize)."""
    return generalized_task_arithmetic(group, "magnitude", True, **p)


@register("dare_ties", _task_arithmetic_params(False, True), needs_base=True, random=True)
def dare_ties(group: Group, **p: Any) -> torch.Tensor:
    """DARE + TIES (Yu et al. 2023): d_i = w_i * rescale(Bernoulli(density) * (x_i - base)), then TIES's sign
    election and disjoint sum; rescale multiplies kept entries by |x_i - base|_1 / |kept|_1 (about 1/density)."""
    return generalized_task_arithmetic(group, "random", True, **p)


@register("dare_linear", _task_arithmetic_params(False, True), needs_base=True, random=True)
def dare_linear(group: Group, **p: Any) -> torch.Tensor:
    """DARE (Yu et al. 2023): out = base + lambda * sum_i w_i * rescale(Bernoulli(density) * (x_i - base))."""
    return generalized_task_arithmetic(group, "random", False, **p)


def _flat_norms(x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype, chunk: int = 1 << 20):
    """(|x|, |y|, <x/|x|, y/|y|>) over all elements, in `dtype`, chunked so scratch stays small."""
    a, b = x.reshape(-1), y.reshape(-1)
    norm_a = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(a[i : i + chunk].to(dtype)) for i in range(0, len(a), chunk)])
    )
    norm_b = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(b[i : i + chunk].to(dtype)) for i in range(0, len(b), chunk)])
    )
    norm_a = norm_a if norm_a > 1e-8 else torch.ones((), dtype=dtype)
    norm_b = norm_b if norm_b > 1e-8 else torch.ones((), dtype=dtype)
    dot = sum(
        ((a[i : i + chunk].to(dtype) / norm_a) * (b[i : i + chunk].to(dtype) / norm_b)).sum()
        for i in range(0, len(a), chunk)
    )
    return norm_a, norm_b, torch.as_tensor(dot, dtype=dtype).clamp(-1, 1)


@register("slerp", (Param("t", float, "shared", help="0 = base model, 1 = the other model"),), needs_base=True,
          min_inputs=2, max_inputs=2)  # fmt: skip
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
