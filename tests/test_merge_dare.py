"""DARE (random drop and rescale): the drop rate and the rescaling hold statistically; a fixed seed repeats exactly."""

from pathlib import Path

import pytest
import torch
from merge_fixtures import merge_models, read_all, run_dusk  # noqa: F401

from dusk.merge.methods import METHODS, Group

SHAPE = (400, 500)  # 200k entries: the kept fraction's standard deviation is about 0.001


def _dare(method: str, density: float, rescale: bool, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    base = torch.randn(SHAPE, generator=torch.Generator().manual_seed(100))
    delta = torch.randn(SHAPE, generator=torch.Generator().manual_seed(101))
    group = Group([base, base + delta], base=0, name="w", generator=torch.Generator().manual_seed(seed))
    params = {"weight": [1.0], "density": [density], "rescale": rescale, "normalize": False, "lambda": 1.0}
    out = METHODS[method].fn(group, **params, int8_mask=False)
    return out - base, delta


@pytest.mark.parametrize("method", ["dare_linear", "dare_ties"])
@pytest.mark.parametrize("density", [0.1, 0.5, 0.9])
def test_drop_rate_and_no_rescale(method: str, density: float) -> None:
    merged, delta = _dare(method, density, rescale=False)
    kept = merged.abs() > 1e-6
    assert abs(kept.float().mean().item() - density) < 0.01
    torch.testing.assert_close(merged[kept], delta[kept], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("density", [0.2, 0.7])
def test_rescale_restores_the_l1_norm(density: float) -> None:
    merged, delta = _dare("dare_linear", density, rescale=True)
    kept = merged.abs() > 1e-6
    ratio = merged[kept] / delta[kept]
    assert ratio.std().item() < 1e-4  # one factor for the whole tensor
    assert abs(ratio.mean().item() * density - 1) < 0.03  # about 1 / density
    torch.testing.assert_close(merged.abs().sum(), delta.abs().sum(), rtol=1e-4, atol=0)


def test_same_seed_same_draws_other_seed_other_draws() -> None:
    first, _ = _dare("dare_ties", 0.5, rescale=True, seed=3)
    again, _ = _dare("dare_ties", 0.5, rescale=True, seed=3)
    other, _ = _dare("dare_ties", 0.5, rescale=True, seed=4)
    assert torch.equal(first, again) and not torch.equal(first, other)


def _config(m: list[Path], method: str, seed: int) -> str:
    return (
        f"merge_method: {method}\nbase_model: {m[0]}\nseed: {seed}\nparameters: {{rescale: false}}\nmodels:\n"
        f"  - model: {m[1]}\n    parameters: {{weight: 1.0, density: 0.3}}\n"
    )


def test_merge_twice_with_a_seed_is_identical(merge_models: list[Path], tmp_path: Path) -> None:  # noqa: F811
    one = read_all(run_dusk(_config(merge_models, "dare_ties", 7), tmp_path, "one"))
    two = read_all(run_dusk(_config(merge_models, "dare_ties", 7), tmp_path, "two"))
    three = read_all(run_dusk(_config(merge_models, "dare_ties", 8), tmp_path, "three"))
    assert all(torch.equal(one[name], two[name]) for name in one)
    assert any(not torch.equal(one[name], three[name]) for name in one)


def test_merged_model_keeps_about_density_of_each_task_vector(merge_models: list[Path], tmp_path: Path) -> None:  # noqa: F811
    out = read_all(run_dusk(_config(merge_models, "dare_linear", 0), tmp_path))
    base, tuned = read_all(merge_models[0]), read_all(merge_models[1])
    changed = total = 0
    for name, tensor in out.items():
        moved = tensor != base[name]
        differs = tuned[name] != base[name]
        torch.testing.assert_close(tensor[moved], tuned[name][moved], rtol=0, atol=1e-6)  # kept, unscaled
        changed += int(moved.sum())
        total += int(differs.sum())
    assert abs(changed / total - 0.3) < 0.01
