"""Shared fixtures: tiny random models (2 layers, hidden 64) built once per session, and an isolated cache."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dusk.models.tiny import build_tiny_model


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests never touch the user's cache: one cache for the whole session (the GGUF is converted once)."""
    previous = os.environ.get("DUSK_CACHE")
    os.environ["DUSK_CACHE"] = str(tmp_path_factory.getbasetemp() / "dusk-cache")
    yield
    if previous is None:
        os.environ.pop("DUSK_CACHE", None)
    else:
        os.environ["DUSK_CACHE"] = previous


@pytest.fixture
def benchmark_data(monkeypatch: pytest.MonkeyPatch) -> Path:
    """DUSK_DATA_DIR pointed at the real benchmark folder for one test (skipped without one)."""
    from eval_task_fixtures import real_data_dir

    root = real_data_dir()
    monkeypatch.setenv("DUSK_DATA_DIR", str(root))
    return root


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama", "llama", num_layers=2, seed=0)


@pytest.fixture(scope="session")
def tiny_llama_4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-layer tiny Llama, so DUS has layers to drop."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama-4", "llama", num_layers=4, seed=1)


@pytest.fixture(scope="session")
def tiny_llama_4b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second 4-layer tiny Llama with different weights (same architecture)."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama-4b", "llama", num_layers=4, seed=2)


@pytest.fixture(scope="session")
def tiny_qwen2_4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-qwen2-4", "qwen2", num_layers=4, seed=3)


@pytest.fixture(scope="session")
def tiny_mistral_4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-mistral-4", "mistral", num_layers=4, seed=4)
