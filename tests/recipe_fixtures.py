"""A session-wide run of recipes/tiny.yaml (the whole pipeline on the tiny model), shared by the runner, store and
report tests so the pipeline runs once per test session."""

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dusk.recipe import load_recipe
from dusk.runner import RunSummary, run_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def real_data_dir() -> Path:
    """$DUSK_DATA_DIR, else ../shared/data; skip when neither holds the benchmark and training data."""
    root = Path(os.environ.get("DUSK_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
    if not (root / "train").is_dir() or not (root / "arc_challenge").is_dir():
        pytest.skip(f"data not found at {root}; set DUSK_DATA_DIR")
    return root


@dataclass(frozen=True)
class TinyRun:
    recipe: Path
    run_dir: Path
    summary: RunSummary
    seconds: float


_RUNS: dict[str, TinyRun] = {}  # one run per session, even though each test module imports the fixture


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyRun]:
    if "tiny" in _RUNS:
        yield _RUNS["tiny"]
        return
    previous = os.environ.get("DUSK_DATA_DIR")
    os.environ["DUSK_DATA_DIR"] = str(real_data_dir())
    try:
        run_dir = tmp_path_factory.mktemp("tiny-run")
        started = time.perf_counter()
        summary = run_recipe(load_recipe(RECIPES / "tiny.yaml"), run_dir, show_progress=False)
        _RUNS["tiny"] = TinyRun(RECIPES / "tiny.yaml", run_dir, summary, time.perf_counter() - started)
        yield _RUNS["tiny"]
    finally:
        if previous is None:
            os.environ.pop("DUSK_DATA_DIR", None)
        else:
            os.environ["DUSK_DATA_DIR"] = previous
