"""Per-item metrics and their aggregation, computed as lm-evaluation-harness computes them.

acc: argmax of summed log-likelihoods is the gold choice. acc_norm: argmax of log-likelihood / character length
of the choice text (without the leading space). mc2: normalised probability mass on TruthfulQA's true answers.
GSM8K exact match: strict = the number after `#### `, flexible = the last number in the output, both compared
with the gold after lm-eval's cleanup (drop `,`, `$`, everything up to `#### `, a final `.`; lowercase).
stderr: sample standard deviation / sqrt(n) (lm-eval's `mean_stderr`).

    python -c "from dusk.eval.metrics import flexible_extract; print(flexible_extract('so 3 + 4 = 7.'))"
"""

import math
import re
from collections.abc import Sequence

STRICT_RE = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE_RE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
IGNORE_RES = (",", r"\$", r"(?s).*#### ", r"\.$")  # gsm8k.yaml regexes_to_ignore, applied in this order
INVALID = "[invalid]"


def argmax(values: Sequence[float]) -> int:
    """First index of the maximum (numpy.argmax's tie rule)."""
    best = 0
    for index, value in enumerate(values):
        if value > values[best]:
            best = index
    return best


def choice_scores(logprobs: Sequence[float], choices: Sequence[str], gold: int) -> dict[str, float]:
    """acc and acc_norm for one multiple-choice item."""
    normed = [lp / float(len(choice)) for lp, choice in zip(logprobs, choices, strict=True)]
    return {"acc": float(argmax(logprobs) == gold), "acc_norm": float(argmax(normed) == gold)}


def mc2(logprobs: Sequence[float], labels: Sequence[int]) -> float:
    """Probability mass on the true answers after normalising exp(log-likelihood) over all answers."""
    probs = [math.exp(lp) for lp in logprobs]
    total = sum(probs)
    return sum(p for p, label in zip(probs, labels, strict=True) if label == 1) / total


def strict_extract(text: str) -> str:
    """lm-eval's strict-match filter: the first `#### N`, else `[invalid]`."""
    found = STRICT_RE.findall(text)
    return found[0].strip() if found else INVALID


def flexible_extract(text: str) -> str:
    """lm-eval's flexible-extract filter: the last number-like match, else `[invalid]`."""
    found = FLEXIBLE_RE.findall(text)
    if not found:
        return INVALID
    groups = [group for group in found[-1] if group]
    return groups[0].strip() if groups else INVALID


def _clean(text: str) -> str:
    for pattern in IGNORE_RES:
        text = re.sub(pattern, "", text)
    return text.lower()


def exact_match(prediction: str, reference: str) -> float:
    """gsm8k.yaml's exact_match: both sides cleaned (ignore_case, regexes_to_ignore), then compared."""
    return float(_clean(prediction) == _clean(reference))


def leaderboard_gsm8k(completion: str, answer: str) -> tuple[str, float]:
    """b281b09's gsm8k acc: the `#### N` of output and gold, commas dropped, compared as strings."""

    def extract(text: str) -> str:
        match = STRICT_RE.search(text)
        return match.group(1).strip().replace(",", "") if match else INVALID

    predicted = extract(completion)
    return predicted, float(predicted == extract(answer))


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def mean_stderr(values: Sequence[float]) -> float | None:
    """Standard error of the mean (sample stddev / sqrt(n)); None for fewer than 2 values."""
    if len(values) < 2:
        return None
    mu = mean(values)
    return math.sqrt(sum((x - mu) ** 2 for x in values) / (len(values) - 1)) / math.sqrt(len(values))


def pooled_stderr(stderrs: Sequence[float], sizes: Sequence[int]) -> float | None:
    """lm-eval's pooled_sample_stderr for a size-weighted group mean (MMLU in harness mode)."""
    if sum(sizes) <= len(sizes):
        return None
    var = sum((n - 1) * se**2 * n for se, n in zip(stderrs, sizes, strict=True)) / (sum(sizes) - len(sizes))
    return math.sqrt(var / sum(sizes))


def unweighted_stderr(stderrs: Sequence[float]) -> float:
    """stderr of a plain mean of k independent means: sqrt(sum se^2) / k (MMLU in leaderboard mode)."""
    return math.sqrt(sum(se**2 for se in stderrs)) / len(stderrs)
