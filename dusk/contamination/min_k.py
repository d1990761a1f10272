"""Min-K% Prob (Shi et al. 2023): the mean of a text's lowest k% token log-probabilities under a model.

A text the model has seen in training has few very unlikely tokens, so its Min-K% Prob is closer to 0.

    python -c "import torch; from dusk.contamination.min_k import *; print(min_k_prob(torch.tensor([-1., -5.]), 50))"
"""

import math

import torch

# The k values reported (percent of the text's tokens); Shi et al. sweep 5..60% and recommend 20%.
MIN_K_PERCENTS = (5, 10, 20, 30, 40, 50, 60)


def min_k_prob(token_logprobs: torch.Tensor, percent: float) -> float:
    """Mean of the lowest `percent`% of `token_logprobs` (at least one token; k = floor(n * percent / 100))."""
    if token_logprobs.numel() == 0:
        raise ValueError("min_k_prob needs at least one token log-probability")
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    count = max(1, math.floor(token_logprobs.numel() * percent / 100))
    lowest = torch.sort(token_logprobs.flatten().double()).values[:count]
    return lowest.mean().item()


def min_k_profile(token_logprobs: torch.Tensor, percents: tuple[int, ...] = MIN_K_PERCENTS) -> dict[str, float]:
    """Min-K% Prob for every k in `percents`, keyed by the percent as a string ("20")."""
    return {str(percent): min_k_prob(token_logprobs, percent) for percent in percents}
