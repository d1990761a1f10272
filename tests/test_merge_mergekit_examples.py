"""mergekit's own material as a test suite: its examples/*.yml and the configs of its tests/test_basic_merges.py
(mergekit a6e4028), with model names mapped to tiny random Llamas, each merged by dusk and by mergekit 0.1.5 and
compared tensor by tensor.

Deterministic methods must agree bit for bit (dusk's output against mergekit's cast to the merge's dtype, which is
what mergekit writes except where its result is promoted to float32: arcee_fusion, ramplus_tl). Random methods
(DARE, DELLA) draw from different generators, so the share of changed entries and their mean change must agree
within a tolerance instead. The layer ranges of the 40-layer examples are scaled to the tiny models' 4 layers.
"""

from pathlib import Path

import pytest
import torch
from merge_fixtures import merge_models, read_all, run_dusk, run_mergekit  # noqa: F401

from dusk.errors import DuskError
from dusk.models.tiny import build_tiny_model

# mergekit's examples/*.yml (a6e4028), with {a}, {b}, {c} for the fine-tunes and {base} for a fourth model.
EXAMPLES = {
    "arcee_fusion.yml": """
models:
  - model: {a}
  - model: {b}
merge_method: arcee_fusion
base_model: {a}
dtype: bfloat16
""",
    "bio-merge.yml": """
models:
  - model: {a}
    parameters:
      density: 0.5
      weight: 0.5
  - model: {b}
    parameters:
      density: 0.5
      weight: 0.5
merge_method: ties
base_model: {base}
parameters:
  normalize: false
  int8_mask: true
dtype: float16
""",
    "gradient-slerp.yml": """
slices:
  - sources:
      - model: {a}
        layer_range: [0, 4]
      - model: {b}
        layer_range: [0, 4]
merge_method: slerp
base_model: {a}
parameters:
  t:
    - filter: self_attn
      value: [0, 0.5, 0.3, 0.7, 1]
    - filter: mlp
      value: [1, 0.5, 0.7, 0.3, 0]
    - value: 0.5 # fallback for rest of tensors
dtype: float16
""",
    "linear.yml": """
models:
  - model: {a}
    parameters:
      weight: 1.0
  - model: {c}
    parameters:
      weight: 0.3
  - model: {b}
    parameters:
      weight: 0.5
merge_method: linear
dtype: float16
""",
    "orcamini-platy-44layer.yml": """
slices:
  - sources:
    - model: {a}
      layer_range: [0, 3]
  - sources:
    - model: {b}
      layer_range: [1, 4]
merge_method: passthrough
dtype: float16
""",
    "ties.yml": """
models:
  - model: {a}
    parameters:
      density: [1, 0.7, 0.1] # density gradient
      weight: 1.0
  - model: {b}
    parameters:
      density: 0.5
      weight: [0, 0.3, 0.7, 1] # weight gradient
  - model: {c}
    parameters:
      density: 0.33
      weight:
        - filter: mlp
          value: 0.5
        - value: 0
merge_method: ties
base_model: {base}
parameters:
  normalize: true
  int8_mask: true
dtype: float16
""",
}


def _two_models(method: str, base: str | None, params: str = "", first: str = "{a}", second: str = "{b}") -> str:
    """mergekit's TestBasicMerges.two_model_config: weights 0.6 and 0.4, bfloat16, optional base and parameters."""
    text = f"merge_method: {method}\ndtype: bfloat16\n"
    text += f"base_model: {base}\n" if base else ""
    text += f"parameters: {params}\n" if params else ""
    return text + (
        f"models:\n  - model: {first}\n    parameters: {{{{weight: 0.6}}}}\n"
        f"  - model: {second}\n    parameters: {{{{weight: 0.4}}}}\n"
    )


# The configs of mergekit's tests/test_basic_merges.py (TestBasicMerges, the Llama ones).
BASIC = {
    "passthrough_scale": "merge_method: passthrough\nmodels:\n  - model: {a}\n    parameters:\n"
    "      scale: [{{filter: o_proj, value: 0}}, {{value: 1}}]\n",
    "linear": _two_models("linear", None),
    "slerp": _two_models("slerp", "{a}", "{{t: 0.35}}"),
    **{
        f"nuslerp-base{base is not None}-row{row}-flat{flat}": _two_models(
            "nuslerp", base, f"{{{{nuslerp_row_wise: {row}, nuslerp_flatten: {flat}}}}}"
        )
        for base in (None, "{c}")
        for row in ("false", "true")
        for flat in ("false", "true")
    },
    "nuslerp-weights-sum-to-zero": _two_models("nuslerp", "{c}", "{{nuslerp_row_wise: false, nuslerp_flatten: false}}")
    .replace("weight: 0.6", "weight: -0.5")
    .replace("weight: 0.4", "weight: 0.5"),
    "task_arithmetic": _two_models("task_arithmetic", "{c}"),
    "breadcrumbs": _two_models("breadcrumbs", "{c}"),
    "ties": _two_models("ties", "{c}", "{{density: 0.3}}"),
    "sce": _two_models("sce", "{c}", "{{select_topk: 0.5}}"),
    "ram": _two_models("ram", "{c}"),
    "ramplus_tl": _two_models("ramplus_tl", "{c}", "{{r: 0.05, alpha: 1.0}}"),
    "multislerp": _two_models("multislerp", "{c}"),
    "model_stock": _two_models("model_stock", "{a}", first="{b}", second="{c}"),
    "model_stock_filterwise": _two_models("model_stock", "{a}", "{{filter_wise: true}}", first="{b}", second="{c}"),
    "arcee_fusion": _two_models("arcee_fusion", "{a}"),
    "nearswap": _two_models("nearswap", "{a}", "{{t: 0.0001}}"),
    "karcher": _two_models("karcher", "{c}", "{{max_iter: 5, tol: 1e-5}}"),
}
# Random methods: same configs, compared by what changes.
RANDOM = {
    "dare_ties": _two_models("dare_ties", "{c}", "{{density: 0.66}}"),
    "della": _two_models("della", "{c}", "{{density: 0.66, epsilon: 0.05, lambda: 0.5}}"),
}


@pytest.fixture(scope="module")
def names(merge_models: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:  # noqa: F811
    base = build_tiny_model(tmp_path_factory.mktemp("merge-base") / "base", "llama", num_layers=4, seed=13)
    return {"a": merge_models[0], "b": merge_models[1], "c": merge_models[2], "base": base}


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _both(text: str, work: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    ours = read_all(run_dusk(text, work))
    theirs = read_all(run_mergekit(text, work / "mergekit"))
    assert sorted(ours) == sorted(theirs), sorted(set(ours) ^ set(theirs))
    return ours, theirs


def _assert_bit_equal(text: str, work: Path) -> None:
    ours, theirs = _both(text, work)
    for name, tensor in ours.items():
        other = theirs[name].to(tensor.dtype)
        assert tensor.shape == other.shape, name
        different = int((tensor != other).sum())
        assert different == 0, f"{name}: {different} of {tensor.numel()} elements differ from mergekit's"


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_mergekit_example(example: str, names: dict[str, Path], tmp_path: Path) -> None:
    _assert_bit_equal(EXAMPLES[example].format(**names), tmp_path)


@pytest.mark.parametrize("case", sorted(BASIC))
def test_mergekit_basic_merge(case: str, names: dict[str, Path], tmp_path: Path) -> None:
    _assert_bit_equal(BASIC[case].format(**names), tmp_path)


def _changes(out: dict[str, torch.Tensor], base: dict[str, torch.Tensor]) -> tuple[float, float]:
    """(share of entries that differ from the base, mean |change|) over all tensors."""
    changed = total = 0
    magnitude = 0.0
    for name, tensor in out.items():
        moved = (tensor.double() - base[name].double()).abs()
        changed += int((moved > 0).sum())
        total += moved.numel()
        magnitude += float(moved.sum())
    return changed / total, magnitude / total


@pytest.mark.parametrize("case", sorted(RANDOM))
def test_mergekit_random_merge(case: str, names: dict[str, Path], tmp_path: Path) -> None:
    """Share of changed entries within 0.02 and mean change within 5% of mergekit's."""
    ours, theirs = _both(RANDOM[case].format(**names), tmp_path)
    base = {name: tensor.to(torch.bfloat16) for name, tensor in read_all(names["c"]).items()}
    mine, reference = _changes(ours, base), _changes(theirs, base)
    assert abs(mine[0] - reference[0]) < 0.02, (mine, reference)
    assert abs(mine[1] - reference[1]) < 0.05 * reference[1], (mine, reference)


def test_della_invalid_epsilon_is_refused_like_mergekit(names: dict[str, Path], tmp_path: Path) -> None:
    text = _two_models("della", "{c}", "{{density: 0.66, epsilon: 1.35, lambda: 0.5}}").format(**names)
    with pytest.raises(ValueError):
        run_mergekit(text, tmp_path / "mergekit")
    with pytest.raises(DuskError, match=r"della density 0.66 with epsilon 1.35: density \+/- epsilon must lie in"):
        run_dusk(text, tmp_path)
    assert not (tmp_path / "dusk").exists()


def _perturbed(base: Path, out: Path, seed: int) -> Path:
    """base + 5% of each tensor's std of seeded noise (a stand-in fine-tune), with base's config and tokenizer."""
    import shutil

    from dusk.models.io import copy_side_files
    from dusk.models.safetensors_io import ModelTensors, write_sharded

    source, generator = ModelTensors(base), torch.Generator().manual_seed(seed)

    def noisy(spec):
        tensor = source.read(spec.name)
        noise = 0.05 * tensor.float().std() * torch.randn(tensor.shape, generator=generator)
        return (tensor.float() + noise).to(tensor.dtype)

    out.mkdir(parents=True)
    write_sharded(out, [source.spec(name) for name in source.names()], noisy)
    shutil.copyfile(base / "config.json", out / "config.json")
    copy_side_files(base, out)
    return out


SMOLLM2 = {
    "ties-float16-3-models": EXAMPLES["ties.yml"],
    "slerp-bfloat16": _two_models("slerp", "{a}", "{{t: 0.35}}"),
    "model_stock-bfloat16": _two_models("model_stock", "{a}", first="{b}", second="{c}"),
}


@pytest.fixture(scope="module")
def smollm2_names(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """SmolLM2-135M as the base and three perturbed copies of it as a, b, c."""
    from dusk.models.io import resolve_model

    root = tmp_path_factory.mktemp("smollm2-copies")
    base = resolve_model("smollm2-135m")
    return {"base": base, **{key: _perturbed(base, root / key, seed) for seed, key in enumerate("abc", 1)}}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SMOLLM2))
def test_smollm2_bit_equal_to_mergekit(case: str, smollm2_names: dict[str, Path], tmp_path: Path) -> None:
    """On SmolLM2-135M (tensors up to 28M elements: several SLERP chunks, real TIES cuts) and three perturbed
    copies, dusk's merge equals mergekit's bit for bit, both single-threaded."""
    _assert_bit_equal(SMOLLM2[case].format(**smollm2_names), tmp_path)
