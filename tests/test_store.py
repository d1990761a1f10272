"""The results store: one transaction per stage result, results keyed by cache key and shared across runs."""

import sqlite3
from pathlib import Path

import pytest

from dusk.errors import DuskError
from dusk.store import Artifact, Score, StageResult, TrainingSummary, find_run_dir, open_store


def start(store, recipe: str = "r") -> int:
    return store.start_run(recipe, "r.yaml", "abc", "stages: {}", ["a.b=1"], {"tables": []}, "run", "0.1.0")


def result() -> StageResult:
    return StageResult(
        scores=[
            Score("arc_challenge", "acc_norm", 0.25, 0.1, 4, headline=True),
            Score("mmlu", "acc", 0.5, None, 2, subject="anatomy"),
        ],
        settings={"mode": "harness", "subset": None, "limit": 4, "dtype": "float32"},
        training=TrainingSummary(3, 1.5, 300, 2.0, "log.jsonl", [(1, 2.0), (2, 1.7), (3, 1.5)]),
        parameters=1234,
    )


def test_a_stage_result_round_trips(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    run_id = start(store)
    store.stage_started(run_id, "sft", 0, "sft", "k1", "running", {"lr": 1e-5}, {"model": ["dus"]})
    store.stage_completed(run_id, "sft", "ran", 2.5, Artifact("k1", "sft", "sft", "/a", "sha", 1234), result())
    assert store.artifact("k1") == Artifact("k1", "sft", "sft", "/a", "sha", 1234)
    assert store.scores("k1") == sorted(result().scores, key=lambda s: (s.task, s.subject, s.metric))
    assert store.settings("k1") == {"mode": "harness", "subset": None, "limit": 4, "dtype": "float32"}
    training = store.training("k1")
    assert training.curve == [(1, 2.0), (2, 1.7), (3, 1.5)] and training.final_loss == 1.5
    [row] = store.stages(run_id)
    assert (row["state"], row["seconds"], row["cache_key"]) == ("ran", 2.5, "k1")


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    run_id = start(store)
    store.stage_started(run_id, "ev", 0, "eval", "k2", "running", {}, {})
    broken = result()
    broken.scores.append(Score("gsm8k", "exact_match", object()))  # not storable: the transaction rolls back
    with pytest.raises(sqlite3.Error):
        store.stage_completed(run_id, "ev", "ran", 1.0, Artifact("k2", "ev", "eval", "/b", "sha", None), broken)
    assert store.artifact("k2") is None and store.scores("k2") == [] and store.training("k2") is None
    assert store.stages(run_id)[0]["state"] == "running"


def test_results_belong_to_cache_keys_and_runs_are_listed(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    first = start(store)
    store.stage_started(first, "sft", 0, "sft", "k1", "running", {}, {})
    store.stage_completed(first, "sft", "ran", 2.0, Artifact("k1", "sft", "sft", "/a", "sha", 1), result())
    store.finish_run(first, "complete")
    second = start(store)
    store.stage_started(second, "sft", 0, "sft", "k1", "cached", {}, {})
    store.stage_cached(second, "sft")
    assert store.run()["id"] == second
    assert store.stages(second)[0]["cache_key"] == "k1" and store.scores("k1")
    store.forget_artifacts_at("/a")
    assert store.artifact("k1") is None
    with pytest.raises(DuskError, match=r"no run with id 7; recorded runs: 1, 2"):
        store.run(7)


def test_store_lookup_errors(tmp_path: Path) -> None:
    with pytest.raises(DuskError, match="no results store here"):
        open_store(tmp_path / "nothing", must_exist=True)
    with pytest.raises(DuskError, match="no results store under"):
        find_run_dir(tmp_path)
    with pytest.raises(DuskError, match="no runs recorded yet"):
        open_store(tmp_path / "empty").run()
    assert find_run_dir(tmp_path) == tmp_path / "empty"
