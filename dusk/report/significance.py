"""When is one score ahead of another: each number carries its standard error, and a difference counts only when it
exceeds the noise of both.

The rule: score a is ahead of score b when a - b > 1.96 x sqrt(se_a^2 + se_b^2), the standard error of the
difference of two independent estimates (a two-sided 95% test of each pair on its own). A column's top score is
marked best only when it is ahead of every other score in the column; otherwise the top is "within noise" and no
score is ranked. A score without a standard error (fewer than 2 items) is never ahead of anything.

    python -c "from dusk.report.significance import Estimate, leader; \
print(leader([Estimate(0.5, 0.05), Estimate(0.25, 0.04)]))"
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

Z = 1.96  # two-sided 95% normal quantile
RULE = (
    "± is one standard error over items (sample standard deviation / √n; MMLU pooled over its subjects as "
    "lm-evaluation-harness pools it, or over its items when a subject has only one; H6 = √(Σ se²) / 6 over its six "
    "tasks, taken as independent samples). A score is "
    f"bold only when it beats every other score in its column by more than {Z} × the standard error of the "
    "difference, √(se₁² + se₂²) (a 95% test of each pair); where the top is within that noise of another row, "
    "nothing is bold and the line under the table says so. A score without ± (fewer than 2 items) is never bold."
)


@dataclass(frozen=True)
class Estimate:
    """A measured number with its standard error and the count it rests on (None where unknown)."""

    value: float | None
    stderr: float | None = None
    n: int | None = None


def difference_stderr(a: Estimate, b: Estimate) -> float | None:
    """Standard error of a - b for independent estimates: sqrt(se_a^2 + se_b^2); None when either is unknown."""
    if a.stderr is None or b.stderr is None:
        return None
    return math.sqrt(a.stderr**2 + b.stderr**2)


def is_ahead(a: Estimate, b: Estimate, higher_is_better: bool = True, z: float = Z) -> bool:
    """Whether a beats b by more than z standard errors of the difference."""
    se = difference_stderr(a, b)
    if a.value is None or b.value is None or se is None:
        return False
    gap = a.value - b.value if higher_is_better else b.value - a.value
    return gap > z * se


@dataclass(frozen=True)
class Verdict:
    """A column's outcome: the index of its clear best, or the indexes tied within noise at the top."""

    best: int | None = None  # index of the score ahead of every other one
    tied: list[int] = field(default_factory=list)  # when no clear best: the top and every score within noise of it
    runner_up: int | None = None  # the second score (by value), for the size of the lead

    @property
    def top(self) -> int | None:
        return self.best if self.best is not None else (self.tied[0] if self.tied else None)


def leader(estimates: Sequence[Estimate], higher_is_better: bool = True, z: float = Z) -> Verdict:
    """The column's clear best, or the scores tied at its top; an empty verdict when fewer than two are scored."""
    scored = [i for i, e in enumerate(estimates) if e.value is not None]
    if len(scored) < 2:
        return Verdict()
    sign = 1.0 if higher_is_better else -1.0
    ranked = sorted(scored, key=lambda i: -sign * estimates[i].value)  # stable: first row wins equal values
    top, runner_up = ranked[0], ranked[1]
    others = ranked[1:]
    if all(is_ahead(estimates[top], estimates[i], higher_is_better, z) for i in others):
        return Verdict(best=top, runner_up=runner_up)
    tied = [top] + [i for i in others if not is_ahead(estimates[top], estimates[i], higher_is_better, z)]
    return Verdict(tied=tied, runner_up=runner_up)


MAX_ITEM_SD = 0.5  # the largest population sd of item scores in [0, 1]: half of them 0, half 1 (a score of 50%)


def resolvable_gap(ns: Sequence[int], z: float = Z) -> float | None:
    """The gap two scores near 50% must exceed to be beyond noise, for a mean over tasks of `ns` items each (one
    task: a single n): z x sqrt(2) x the standard error such a score has, sqrt(sum 0.5^2 / (n - 1)) / len(ns).
    A property of the item counts alone, so it says what a subset can resolve before anything is scored; scores
    near 0 or 100% have smaller errors and resolve smaller gaps. None when a task has fewer than 2 items."""
    if not ns or min(ns) < 2:
        return None
    stderr = math.sqrt(sum(MAX_ITEM_SD**2 / (n - 1) for n in ns)) / len(ns)
    return z * math.sqrt(2) * stderr


def format_estimate(estimate: Estimate, scale: float = 1.0, decimals: int = 2) -> str:
    """`value ± stderr` (both times `scale`), the value alone when there is no stderr, `-` when there is no value."""
    if estimate.value is None:
        return "-"
    text = f"{scale * estimate.value:.{decimals}f}"
    return text if estimate.stderr is None else f"{text} ± {scale * estimate.stderr:.{decimals}f}"
