"""Means with their standard errors, and paired differences (two models scored on the same items).

A paired difference (model B - model A, item by item) cancels the items' own difficulty, so it resolves far
smaller effects than two independent standard errors would: that is how the measures compare models.

    python -c "from dusk.measures.stats import mean_se, paired; print(mean_se([1, 2, 3]), paired([1, 2], [1.5, 2.6]))"
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z = 1.96  # two-sided 95% normal quantile


@dataclass(frozen=True)
class Mean:
    """A mean over n items and its standard error (sample sd / sqrt(n); None for fewer than 2 items)."""

    value: float
    stderr: float | None
    n: int

    def as_dict(self) -> dict:
        return {"value": self.value, "stderr": self.stderr, "n": self.n}

    @property
    def beyond_noise(self) -> bool:
        """For a difference: whether it is further from 0 than 1.96 standard errors."""
        return self.stderr is not None and abs(self.value) > Z * self.stderr


def mean_se(values: Sequence[float]) -> Mean:
    """The mean of `values` and its standard error."""
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = math.fsum(values) / n
    if n < 2:
        return Mean(mean, None, n)
    variance = math.fsum((x - mean) ** 2 for x in values) / (n - 1)
    return Mean(mean, math.sqrt(variance / n), n)


def paired(reference: Sequence[float], other: Sequence[float]) -> Mean:
    """Mean and standard error of other - reference, item by item (both scored on the same items, in order)."""
    if len(reference) != len(other):
        raise ValueError(f"paired difference of {len(reference)} and {len(other)} items")
    return mean_se([b - a for a, b in zip(reference, other, strict=True)])
