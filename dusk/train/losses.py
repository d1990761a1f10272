"""Pure loss functions of the trainers, over per-token log-probabilities (no model, no batching logic).

Every loss returns a SUM over its units (target tokens, or preference pairs); the loop divides by the number of
units in the whole global batch, so gradient accumulation and data parallelism give the same step as one big batch.

    python -c "import torch; from dusk.train.losses import *; print(dpo_loss(*torch.tensor([-10., -12, -11, -11]), .1))"
"""

import torch
import torch.nn.functional as F


def causal_lm_loss_sum(token_logps: torch.Tensor) -> torch.Tensor:
    """Summed negative log-likelihood of the target tokens.

    `token_logps` [n]: log p(target_i | prefix) of each target token (prompt and padding positions already removed).
    Worked example: log-probs [ln 0.5, ln 0.25] -> -(ln 0.5 + ln 0.25) = ln 8 = 2.0794.
    """
    return -token_logps.sum()


def sequence_logps(token_logps: torch.Tensor, segments: torch.Tensor, num_sequences: int) -> torch.Tensor:
    """Sum the token log-probs of each sequence: `segments` [n] gives each token's sequence index in [0, num).

    Worked example: token_logps [-1, -2, -3], segments [0, 0, 1], num 2 -> [-3, -3].
    """
    out = torch.zeros(num_sequences, dtype=token_logps.dtype, device=token_logps.device)
    return out.index_add(0, segments, token_logps)


def dpo_logits(
    policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor
) -> torch.Tensor:
    """How much more the policy prefers chosen over rejected than the reference does (log-ratio difference)."""
    return (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sigmoid DPO (Rafailov et al. 2023): per-pair -log sigmoid(beta * logits), and the implicit rewards.

    Inputs [B] are summed response log-probs. Returns (losses [B], chosen_rewards [B], rejected_rewards [B]) with
    chosen_reward = beta * (policy_chosen - ref_chosen).
    Worked example: policy (-10, -12), reference (-11, -11), beta 0.1: logits = (1) - (-1) = 2,
    loss = -log sigmoid(0.2) = log(1 + e^-0.2) = 0.598139; rewards chosen 0.1, rejected -0.1.
    """
    logits = dpo_logits(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    losses = -F.logsigmoid(beta * logits)
    return losses, beta * (policy_chosen - ref_chosen).detach(), beta * (policy_rejected - ref_rejected).detach()


def ipo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """IPO (Azar et al. 2023): per-pair (logits - 1/(2 beta))^2 on length-averaged log-probs, and the rewards.

    Pass log-probs already divided by each response's token count (as the IPO paper and TRL do).
    Worked example: policy (-10, -12), reference (-11, -11), beta 0.1: logits 2, loss = (2 - 5)^2 = 9.
    """
    logits = dpo_logits(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    losses = (logits - 1 / (2 * beta)) ** 2
    return losses, beta * (policy_chosen - ref_chosen).detach(), beta * (policy_rejected - ref_rejected).detach()


PREFERENCE_LOSSES = {"sigmoid": dpo_loss, "ipo": ipo_loss}
