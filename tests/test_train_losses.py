"""Pure pieces of training: losses against hand-worked numbers, the lr schedule, targets and packing."""

import math

import pytest
import torch

from dusk.train.batching import pack_examples, pad_collate, shift_targets
from dusk.train.config import SFTConfig
from dusk.train.loop import DataOrder, lr_at
from dusk.train.losses import causal_lm_loss_sum, dpo_loss, ipo_loss, sequence_logps
from dusk.train.model import IGNORE


def test_dpo_loss_equals_the_hand_worked_value() -> None:
    # policy chosen/rejected -10/-12, reference -11/-11, beta 0.1:
    # logits = (-10 + 11) - (-12 + 11) = 2; loss = -log(sigmoid(0.2)) = log(1 + exp(-0.2))
    losses, good, bad = dpo_loss(*torch.tensor([[-10.0], [-12.0], [-11.0], [-11.0]]), beta=0.1)
    assert losses.item() == pytest.approx(math.log(1 + math.exp(-0.2)), abs=1e-6)
    assert losses.item() == pytest.approx(0.598139, abs=1e-6)
    assert good.item() == pytest.approx(0.1) and bad.item() == pytest.approx(-0.1)


def test_dpo_loss_is_log2_when_policy_equals_reference_and_ipo_is_squared_gap() -> None:
    same = torch.tensor([-3.0, -7.0])
    losses, good, bad = dpo_loss(same, same + 1, same, same + 1, beta=0.5)
    assert torch.allclose(losses, torch.full((2,), math.log(2.0)))
    assert torch.equal(good, torch.zeros(2)) and torch.equal(bad, torch.zeros(2))
    ipo, _, _ = ipo_loss(*torch.tensor([[-10.0], [-12.0], [-11.0], [-11.0]]), beta=0.1)
    assert ipo.item() == pytest.approx((2 - 1 / 0.2) ** 2)  # (logits - 1/(2 beta))^2 = 9


def test_lm_loss_and_sequence_sums() -> None:
    logps = torch.log(torch.tensor([0.5, 0.25, 0.125]))
    assert causal_lm_loss_sum(logps[:2]).item() == pytest.approx(math.log(8))
    sums = sequence_logps(logps, torch.tensor([1, 1, 0]), 3)
    assert torch.allclose(sums, torch.tensor([math.log(0.125), math.log(0.125), 0.0]))


def _cfg(**kw) -> SFTConfig:
    return SFTConfig(model="m", data="d", out="o", lr=1.0, max_steps=10, **kw)


def test_schedule_warmup_then_cosine_and_linear() -> None:
    cfg = _cfg(warmup_steps=2, schedule="cosine", min_lr_ratio=0.1)
    assert [lr_at(s, cfg) for s in (0, 1)] == [0.5, 1.0]
    assert lr_at(2, cfg) == pytest.approx(1.0)
    assert lr_at(6, cfg) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))  # halfway
    linear = _cfg(schedule="linear")
    assert [round(lr_at(s, linear), 6) for s in (0, 5, 9)] == [1.0, 0.5, 0.1]


def test_data_order_is_seeded_and_covers_each_epoch() -> None:
    order = DataOrder(5, seed=3)
    stream = order.take(0, 10)
    assert sorted(stream[:5]) == list(range(5)) and sorted(stream[5:]) == list(range(5))
    assert DataOrder(5, seed=3).take(7, 3) == stream[7:10]  # position p is exact, wherever a run resumes


def test_targets_mask_the_prompt_and_packing_restarts_positions() -> None:
    ids = [10, 11, 12, 13, 14]  # prompt 10 11, response 12 13 14
    assert shift_targets(ids, 2) == [IGNORE, 12, 13, 14, IGNORE]
    assert shift_targets(ids, 0) == [11, 12, 13, 14, IGNORE]
    a = {"input_ids": [1, 2, 3], "targets": [IGNORE, 3, IGNORE]}
    b = {"input_ids": [4, 5], "targets": [5, IGNORE]}
    (packed,) = pack_examples([a, b], seq_len=8)
    assert packed["position_ids"] == [0, 1, 2, 0, 1] and packed["targets"] == [IGNORE, 3, IGNORE, 5, IGNORE]
    batch = pad_collate([packed, b], pad_id=0)
    assert batch["position_ids"][1].tolist() == [0, 1, 0, 1, 2]  # padding is its own segment
    assert batch["targets"][1].tolist() == [5, IGNORE, IGNORE, IGNORE, IGNORE]
