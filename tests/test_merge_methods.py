"""Merge methods on numbers worked out by hand, and TIES's top-k trim against mergekit's on tensors full of ties."""

import math

import pytest
import torch

from dusk.errors import DuskError
from dusk.merge.methods import METHODS, Group, get_method
from dusk.merge.sparsify import magnitude

GTA = {"density": [1.0, 1.0], "normalize": True, "rescale": False, "lambda": 1.0, "int8_mask": False}


def test_linear_weighted_average() -> None:
    group = Group([torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])], base=None)
    assert METHODS["linear"].fn(group, weight=[1.0, 3.0], normalize=True).tolist() == [2.5, 3.5]
    assert METHODS["linear"].fn(group, weight=[1.0, 3.0], normalize=False).tolist() == [10.0, 14.0]


def test_task_arithmetic_adds_scaled_task_vectors() -> None:
    base = torch.tensor([1.0, 1.0])
    group = Group([base, torch.tensor([2.0, 0.0]), torch.tensor([1.0, 3.0])], base=0)
    params = GTA | {"normalize": False, "lambda": 0.5}
    # base + 0.5 * (1 * [1, -1] + 2 * [0, 2]) = [1.5, 2.5]
    assert METHODS["task_arithmetic"].fn(group, weight=[1.0, 2.0], **params).tolist() == [1.5, 2.5]


def test_ties_sign_election_and_disjoint_mean() -> None:
    base = torch.zeros(3)
    group = Group([base, torch.tensor([1.0, -2.0, 3.0]), torch.tensor([-1.0, -1.0, 1.0])], base=0)
    # sum = [0, -3, 4] -> signs [+, -, +] (0 counts as +); agreeing: [x1], [x1, x2], [x1, x2]
    assert METHODS["ties"].fn(group, weight=[1.0, 1.0], **GTA).tolist() == [1.0, -1.5, 2.0]


def test_ties_trims_each_task_vector_to_its_density() -> None:
    base = torch.zeros(4)
    group = Group([base, torch.tensor([4.0, -1.0, 0.5, -3.0])], base=0)
    out = METHODS["ties"].fn(group, weight=[1.0], **(GTA | {"density": [0.5]}))
    assert out.tolist() == [4.0, 0.0, 0.0, -3.0]


def test_slerp_of_orthogonal_unit_vectors() -> None:
    group = Group([torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])], base=0)
    out = METHODS["slerp"].fn(group, t=0.5)
    torch.testing.assert_close(out, torch.tensor([math.sqrt(0.5), math.sqrt(0.5)]))
    assert METHODS["slerp"].fn(group, t=0.0).tolist() == [1.0, 0.0]
    collinear = Group([torch.tensor([1.0, 1.0]), torch.tensor([2.0, 2.0])], base=0)
    assert METHODS["slerp"].fn(collinear, t=0.25).tolist() == [1.25, 1.25]  # linear fallback


@pytest.mark.parametrize("density", [0.01, 0.3, 0.5, 0.77, 0.999])
@pytest.mark.parametrize("kind", ["normal", "few-values", "matrix"])
def test_top_k_trim_keeps_the_same_entries_as_mergekit(density: float, kind: str) -> None:
    from mergekit.sparsify import magnitude as mergekit_magnitude

    generator = torch.Generator().manual_seed(7)
    tensor = {
        "normal": lambda: torch.randn(50_000, generator=generator),
        "few-values": lambda: torch.randint(-6, 7, (50_000,), generator=generator).float(),  # ties at every cut
        "matrix": lambda: torch.randint(-3, 4, (300, 70), generator=generator).float() / 7,
    }[kind]()
    ours = magnitude(tensor, density)
    assert torch.equal(ours, mergekit_magnitude(tensor, density))
    assert int((ours != 0).sum()) <= max(1, int(density * tensor.numel()))


def test_registry_rejects_unknown_and_duplicate_names() -> None:
    known = "known methods: arcee_fusion, breadcrumbs, .*, dare_ties, della, .*, ties$"
    with pytest.raises(DuskError, match=f"unknown merge method 'nope'; {known}"):
        get_method("nope")
    from dusk.merge.methods import register

    with pytest.raises(ValueError, match="already registered"):
        register("linear", ())(lambda group: group.tensor(0))
    assert all(METHODS[name].doc for name in METHODS)  # each method states its formula
