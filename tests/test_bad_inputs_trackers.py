"""Bad `--report-to` (issue 17): an unknown tracker, or a known one whose package is not installed, is refused in one
line naming it and what to install, exit 2, before any training, nothing written; the same in a recipe."""

import importlib.util
from pathlib import Path

import pytest

from tests.bad_input_helpers import assert_refused
from tests.train_fixtures import write_jsonl

QUICK = ["--max-steps", "2", "--seq-len", "64", "--batch-size", "2", "--eval-size", "0", "--no-progress"]


@pytest.fixture
def sft_argv(tmp_path: Path, tiny_llama: Path) -> list[str]:
    data = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "Say hi.", "response": "Hi."}] * 4)
    return ["sft", "--model", str(tiny_llama), "--data", str(data), "--out", str(tmp_path / "out"), *QUICK]


def _without(package: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `package` look uninstalled to the check (as on a machine without the trackers extra)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == package else real(name, *a))


@pytest.mark.parametrize(
    ("tracker", "missing", "culprits"),
    [
        pytest.param("tensorbored", None, ["--report-to", "tensorbored", "unknown tracker", "wandb"], id="unknown"),
        pytest.param("all", None, ["--report-to", "'all'", "unknown tracker"], id="all-is-not-one-tracker"),
        pytest.param("tensorboard", "tensorboard", ["tensorboard", "not installed", "dusk[trackers]"], id="no-tb"),
        pytest.param("wandb", "wandb", ["wandb", "not installed", "dusk[trackers]"], id="no-wandb"),
        pytest.param("mlflow", "mlflow", ["mlflow", "not installed", "pip install mlflow"], id="no-mlflow"),
    ],
)
def test_bad_tracker_is_refused_before_training(
    sft_argv, tracker, missing, culprits, tmp_path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    if missing is not None:
        _without(missing, monkeypatch)
    assert_refused([*sft_argv, "--report-to", tracker], culprits, capsys, watch=[tmp_path])
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.run").exists()


def test_bad_tracker_in_a_recipe_is_refused_at_the_dry_run(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: r\nstages:\n  sft: {kind: sft, model: tiny-llama, data: alpaca_gpt4, report_to: neptune}\n"
    )
    assert_refused(["run", str(recipe), "--dry-run"], ["sft", "report_to", "neptune", "unknown tracker"], capsys,
                   watch=[tmp_path])  # fmt: skip
