"""Shared pieces of the merge tests: three tiny Llamas with different weights, and running mergekit 0.1.5 in-process."""

import shutil
from pathlib import Path

import pytest
import torch
import yaml

from dusk.merge.config import load_merge_config
from dusk.merge.run import run
from dusk.models.safetensors_io import ModelTensors
from dusk.models.tiny import build_tiny_model


@pytest.fixture(scope="session")
def merge_models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three 4-layer tiny Llamas (same architecture and tokenizer, seeds 10, 11, 12)."""
    root = tmp_path_factory.mktemp("merge-models")
    return [build_tiny_model(root / f"m{i}", "llama", num_layers=4, seed=10 + i) for i in range(3)]


def run_mergekit(config_text: str, out: Path) -> Path:
    """mergekit's own merge of a YAML config on CPU (lazy unpickle off), as `mergekit-yaml` would run it."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    options = MergeOptions(device="cpu", lazy_unpickle=False, quiet=True, write_model_card=False, random_seed=0)
    run_merge(MergeConfiguration.model_validate(yaml.safe_load(config_text)), str(out), options)
    return out


def run_dusk(config_text: str, work: Path, name: str = "dusk") -> Path:
    path = work / f"{name}.yaml"
    path.write_text(config_text)
    shutil.rmtree(work / name, ignore_errors=True)
    return run(load_merge_config(path, work / name))


def read_all(model_dir: Path) -> dict[str, torch.Tensor]:
    tensors = ModelTensors(model_dir)
    return {name: tensors.read(name) for name in tensors.names()}


def max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference over all tensors (the two models must have the same tensor names and shapes)."""
    assert sorted(a) == sorted(b), sorted(set(a) ^ set(b))
    for name in a:
        assert a[name].shape == b[name].shape and a[name].dtype == b[name].dtype, name
    return max((a[name].double() - b[name].double()).abs().max().item() for name in a)
