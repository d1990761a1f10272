"""Every merge method against mergekit 0.1.5's own kernel on the same tensors, in float32, float16 and bfloat16.

Deterministic methods must be bit-equal (both sides single-threaded: a multi-threaded torch reduction splits
sums differently, so even mergekit's own SLERP output depends on the thread count for tensors over torch's
grain size of 32768 elements). Random methods (DARE, DELLA) are compared by the distribution of what changes.
"""

from typing import Any

import pytest
import torch

from dusk.merge.methods import METHODS, REQUIRED, Group

DTYPES = [torch.float32, torch.float16, torch.bfloat16]

# method -> (number of inputs, base index or None, parameters as mergekit's merge_tensors takes them)
CASES: dict[str, tuple[int, int | None, dict[str, Any]]] = {
    "linear": (3, None, {"weight": [0.2, 0.5, 0.9]}),
    "task_arithmetic": (4, 0, {"weight": [0.3, 0.9, 0.5], "lambda": 0.7}),
    "ties": (4, 0, {"weight": [0.3, 0.9, 0.5], "density": [0.4, 0.7, 0.2]}),
    "ties-rescaled": (3, 0, {"weight": [1.0, 0.5], "density": [0.3, 0.6], "rescale": True, "normalize": False}),
    "breadcrumbs": (3, 0, {"weight": [0.6, 0.4], "density": 0.8, "gamma": 0.05}),
    "breadcrumbs_ties": (4, 0, {"weight": [0.6, 0.4, 1.0], "density": [0.5, 0.8, 0.9], "gamma": 0.1, "rescale": True}),
    "slerp": (2, 0, {"t": 0.35}),
    "nuslerp": (3, 2, {"weight": [0.6, 0.4]}),
    "nuslerp-rows": (2, None, {"weight": [0.6, 0.4], "nuslerp_row_wise": True, "nuslerp_flatten": False}),
    "nuslerp-columns": (3, 0, {"weight": [-0.5, 0.5], "nuslerp_flatten": False}),
    "multislerp": (4, 0, {"weight": [0.2, 0.3, 0.5]}),
    "multislerp-no-base": (3, None, {"weight": [1.0, 2.0, 3.0], "normalize_weights": True}),
    "karcher": (3, None, {"max_iter": 5, "tol": 1e-5}),
    "model_stock": (3, 0, {}),
    "model_stock-filter-wise": (4, 0, {"filter_wise": True}),
    "sce": (3, 0, {"select_topk": 0.5}),
    "sce-all": (4, 0, {}),
    "nearswap": (2, 0, {"t": 0.05}),
    "arcee_fusion": (2, 0, {}),
    "ram": (3, 0, {"epsilon": 0.02}),
    "ramplus_tl": (4, 0, {"r": 0.05, "alpha": 1.0, "epsilon": 0.02}),
    "passthrough": (1, None, {"scale": 0.5}),
}


def _tensors(count: int, shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0) -> list[torch.Tensor]:
    """A 'base' and fine-tune-like copies (base + small noise, some entries left unchanged), in `dtype`."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.randn(shape, generator=generator)
    out = [base]
    for _ in range(count - 1):
        noise = 0.05 * torch.randn(shape, generator=generator)
        out.append(base + noise * (torch.rand(shape, generator=generator) > 0.2))
    return [t.to(dtype) for t in out]


def dusk_merge(name: str, tensors: list[torch.Tensor], base: int | None, params: dict[str, Any]) -> torch.Tensor:
    """Call dusk's method with mergekit-style parameters: defaults filled, per-model scalars broadcast."""
    method = METHODS[name]
    resolved = {}
    for param in method.params:
        value = params.get(param.name, param.default)
        assert value is not REQUIRED, param.name
        if param.scope != "shared" and not isinstance(value, list):
            count = len(tensors) - (1 if param.scope == "non_base" and base is not None else 0)
            value = [value] * count
        resolved[param.name] = value
    group = Group(list(tensors), base, name="w", generator=torch.Generator().manual_seed(0))
    return method.fn(group, **resolved)


def mergekit_merge(name: str, tensors: list[torch.Tensor], base: int | None, params: dict[str, Any]) -> torch.Tensor:
    from mergekit.merge_methods import merge_tensors

    return merge_tensors(tensors, name, parameters=params, base_index=base, name="w")


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("shape", [(48, 40), (40,)], ids=["matrix", "vector"])
def test_bit_equal_to_mergekit(case: str, dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    count, base, params = CASES[case]
    name = case.split("-")[0]
    tensors = _tensors(count, shape, dtype)
    ours = dusk_merge(name, tensors, base, params)
    theirs = mergekit_merge(name, tensors, base, params)
    assert ours.shape == theirs.shape
    ours = ours.to(tensors[0].dtype)  # dusk writes the merge's dtype; mergekit's result may be promoted
    theirs = theirs.to(tensors[0].dtype)
    different = int((ours != theirs).sum())
    assert different == 0, f"{different} of {ours.numel()} elements differ"
    assert not torch.equal(ours, tensors[0]) or name == "passthrough"


def test_ties_in_float16_sums_the_models_once() -> None:
    """Three-model TIES in float16 (mergekit's examples/ties.yml): one rounding of the sum, not one per model."""
    tensors = _tensors(4, (256, 256), torch.float16, seed=3)
    params = {"weight": [1.0, 0.3, 0.5], "density": [0.7, 0.5, 0.33], "int8_mask": True}
    assert torch.equal(dusk_merge("ties", tensors, 0, params), mergekit_merge("ties", tensors, 0, params))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_slerp_over_several_chunks(dtype: torch.dtype) -> None:
    """Tensors over 1M elements are reduced in chunks: the chunk results are summed as one tensor (as mergekit)."""
    from mergekit.merge_methods.slerp import slerp as mergekit_slerp

    v0, v1 = _tensors(2, (3000, 2000), dtype, seed=5)  # 6 chunks (bfloat16: 9 elements differed with Python's sum)
    v1 = v1 + (0.5 * torch.randn(v1.shape, generator=torch.Generator().manual_seed(5))).to(dtype)
    ours = dusk_merge("slerp", [v0, v1], 0, {"t": 0.4})
    theirs = mergekit_slerp(torch.tensor([0.4]), v0.unsqueeze(0), v1.unsqueeze(0))[0]
    assert torch.equal(ours, theirs.to(dtype))


def _changes(out: torch.Tensor, base: torch.Tensor) -> tuple[float, float]:
    moved = (out - base).abs()
    return float((moved > 0).float().mean()), float(moved.mean())


@pytest.mark.parametrize(
    "name,params",
    [
        ("dare_ties", {"weight": [0.6, 0.4], "density": 0.66}),
        ("dare_linear", {"weight": [0.6, 0.4], "density": 0.3}),
        ("della", {"weight": [0.6, 0.4], "density": 0.66, "epsilon": 0.05, "lambda": 0.5}),
        ("della_linear", {"weight": [0.6, 0.4], "density": 0.4, "epsilon": 0.2}),
    ],
)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_random_methods_change_what_mergekit_changes(name: str, params: dict, dtype: torch.dtype) -> None:
    """Share of changed entries within 0.01 and mean change within 3% of mergekit's (300x400: std ~0.001)."""
    torch.manual_seed(0)
    tensors = _tensors(3, (300, 400), dtype, seed=9)
    ours = _changes(dusk_merge(name, tensors, 0, params).float(), tensors[0].float())
    theirs = _changes(mergekit_merge(name, tensors, 0, params).float(), tensors[0].float())
    assert abs(ours[0] - theirs[0]) < 0.01, (ours, theirs)
    assert abs(ours[1] - theirs[1]) < 0.03 * theirs[1], (ours, theirs)


def test_della_keeps_large_entries_more_often() -> None:
    """MagPrune's keep probability grows with the magnitude rank: density - eps for the smallest, + eps largest."""
    base = torch.zeros(200, 1000)
    tuned = torch.arange(1, 1001, dtype=torch.float32).repeat(200, 1)
    params = {"weight": [1.0], "density": 0.5, "epsilon": 0.3, "rescale": False}
    kept = dusk_merge("della_linear", [base, tuned], 0, params) != 0
    share = kept.float().mean(dim=0)
    assert abs(share[:100].mean().item() - 0.23) < 0.03 and abs(share[-100:].mean().item() - 0.77) < 0.03
