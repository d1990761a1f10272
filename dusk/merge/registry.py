"""The merge-method registry: what a method is (`MergeMethod`: its function, parameters and input contract), the
inputs it sees (`Group`), and `register`, the decorator each method module uses. Lookup by name is in
`dusk.merge.methods`, which imports every method module.

Each method sees a `Group` (the inputs' tensors for one output tensor, in config order, and which one is the
base) plus its resolved parameters as keyword arguments; per-model parameters arrive as lists aligned with the
models they apply to (every input, or every non-base input).

    python -c "from dusk.merge.registry import Param; print(Param('t', float, 'shared'))"
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

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
    takes_base: bool = False  # a base is optional: used when given (needs_base implies it)
    min_non_base: int = 0
    max_non_base: int | None = None
    reference: str = ""  # the paper or page the method comes from
    elementwise: bool = False  # output element i depends only on input elements i (so rows can be chunked)
    random: bool = False
    doc: str = field(default="", repr=False)

    @property
    def uses_base(self) -> bool:
        return self.needs_base or self.takes_base

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


WEIGHT = "relative weight of this model"
