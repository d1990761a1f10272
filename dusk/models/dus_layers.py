"""An output layer of an up-scaled model, as a recipe over source layers: a copy, a weighted mix, or a zeroed copy.

Plain DUS copies one source layer per output layer; seam blending mixes two; identity expansion copies one and sets
the modules that write to the residual stream to zero. `OutputLayer` says which, and the writer follows it.

    OutputLayer(((0.75, "smollm2-135m", 21), (0.25, "smollm2-135m", 7)))
"""

from dataclasses import dataclass

Term = tuple[float, str, int]  # (weight, model argument, source layer index)


@dataclass(frozen=True)
class OutputLayer:
    """sum(weight * source layer) over `terms`, with the modules in `zeroed` (tensor name prefixes) set to zero."""

    terms: tuple[Term, ...]
    zeroed: tuple[str, ...] = ()

    @classmethod
    def copy(cls, model: str, layer: int) -> "OutputLayer":
        return cls(((1.0, model, layer),))

    @property
    def source(self) -> tuple[str, int]:
        """The source with the largest weight (the first of equals): its config entries follow this layer."""
        _weight, model, layer = max(self.terms, key=lambda term: term[0])
        return model, layer

    @property
    def is_copy(self) -> bool:
        return len(self.terms) == 1 and self.terms[0][0] == 1.0 and not self.zeroed

    def is_zeroed(self, suffix: str) -> bool:
        return any(suffix.startswith(module + ".") for module in self.zeroed)

    def to_json(self) -> dict:
        return {"terms": [list(term) for term in self.terms], "zeroed": list(self.zeroed)}
