"""After a recipe's eval stage, the scored model's card carries its H6 results (model-index), but only for a model
directory the run wrote: a model outside the run's artifacts, a user's README.md and a hub id are left alone. The
card files are not part of a directory's hash, so the refresh leaves the stored artifact hash (and every cache key
built on it) true."""

import json
import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import ModelCard
from recipe_fixtures import TinyRun, tiny_run  # noqa: F401

from dusk.cli import main
from dusk.h6 import H6
from dusk.hashing import HashMemo, sha256_dir
from dusk.stages.results import eval_result
from dusk.store import open_store


def write_results(eval_dir: Path, **settings: object) -> dict[str, float]:
    """An eval stage's output: results.json with the six H6 scores in the shape dusk eval writes."""
    scores = {b.task: 0.2 + i / 25 for i, b in enumerate(H6)}
    tasks = {
        b.task: {"metrics": {b.metric: {"value": scores[b.task], "stderr": 0.02}}, "n": 50, "headline": b.metric}
        for b in H6
        if b.task != "mmlu"
    }
    groups = {"mmlu": {"metric": "acc", "value": scores["mmlu"], "stderr": 0.02, "n": 57}}
    eval_dir.mkdir(parents=True, exist_ok=True)
    document = {"tasks": tasks, "groups": groups, "settings": {"mode": "harness", "limit": 50, **settings}}
    (eval_dir / "results.json").write_text(json.dumps(document))
    return scores


def model_index(card_path: Path) -> dict[str, float]:
    """(benchmark title -> score in %) from a card's model-index."""
    results = ModelCard.load(card_path).data.eval_results or []
    return {result.dataset_name: result.metric_value for result in results}


def score_of(results: dict, benchmark) -> float | None:
    """A benchmark's score in an eval's results.json: its task's metric, or its group's (MMLU over subjects)."""
    task = results["tasks"].get(benchmark.task)
    if task is not None:
        return task["metrics"][benchmark.metric]["value"]
    group = results.get("groups", {}).get(benchmark.task)
    return group["value"] if group and group["metric"] == benchmark.metric else None


def make_run(parent: Path, run: Path) -> Path:
    """A run directory holding a dusk upscale of `parent` in its artifacts (with its card) and a results store."""
    (run / "artifacts").mkdir(parents=True)
    open_store(run).close()
    assert main(["upscale", str(parent), "--drop", "1", "--out", str(run / "artifacts" / "dus")]) == 0
    return run


@pytest.fixture
def run_dir(tiny_llama_4: Path, tmp_path: Path) -> Path:
    return make_run(tiny_llama_4, tmp_path / "run")


def test_an_eval_stage_refreshes_the_card_of_the_model_the_run_wrote(run_dir: Path) -> None:
    model = run_dir / "artifacts" / "dus"
    assert ModelCard.load(model / "README.md").data.eval_results is None
    before = sha256_dir(model)
    eval_dir = run_dir / "artifacts" / "evals" / "dus"  # a for_each eval's nested stage name
    scores = write_results(eval_dir, apply_chat_template=True, fewshot_as_multiturn=False, system_instruction=None)
    eval_result(eval_dir, SimpleNamespace(model=str(model)))
    assert model_index(model / "README.md") == {b.title: round(100 * scores[b.task], 2) for b in H6}
    text = (model / "README.md").read_text()
    assert "## Evaluation (H6)" in text and "(mode harness, limit 50, chat template (few-shot in one message))" in text
    assert sha256_dir(model) == before  # the model's identity did not change with its card


def test_models_outside_the_run_and_users_readmes_are_left_alone(run_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "dus"  # a dusk model given by path, not written by this run
    shutil.copytree(run_dir / "artifacts" / "dus", outside)
    own = run_dir / "artifacts" / "own"
    shutil.copytree(run_dir / "artifacts" / "dus", own)
    (own / "README.md").write_text("# my notes\n")
    eval_dir = run_dir / "artifacts" / "eval"
    write_results(eval_dir)
    for model in (outside, own):
        text = (model / "README.md").read_bytes()
        eval_result(eval_dir, SimpleNamespace(model=str(model)))
        assert (model / "README.md").read_bytes() == text
        assert not (model / "dusk_card_results.json").exists()
    eval_result(eval_dir, SimpleNamespace(model="HuggingFaceTB/SmolLM2-135M"))  # a hub id: nothing to refresh
    link = run_dir / "artifacts" / "linked"  # a link inside the run to a model outside it
    link.symlink_to(outside, target_is_directory=True)
    eval_result(eval_dir, SimpleNamespace(model=str(link)))
    assert not (outside / "dusk_card_results.json").exists()


def test_a_card_that_cannot_be_made_is_a_warning_not_a_failed_eval(
    tiny_llama_4: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    parent = tmp_path / "parent"
    shutil.copytree(tiny_llama_4, parent)
    run = make_run(parent, tmp_path / "run")
    shutil.rmtree(parent)  # the parent moved away since: its weights cannot be hashed for the card
    card = (run / "artifacts" / "dus" / "README.md").read_bytes()
    write_results(run / "artifacts" / "eval")
    with caplog.at_level(logging.WARNING, logger="dusk.cards.refresh"):
        result = eval_result(run / "artifacts" / "eval", SimpleNamespace(model=str(run / "artifacts" / "dus")))
    assert len([s for s in result.scores if s.headline]) == 6  # the scores stand
    assert "not refreshed" in caplog.text and str(parent) in caplog.text
    assert (run / "artifacts" / "dus" / "README.md").read_bytes() == card


def test_card_files_are_not_part_of_a_directorys_hash(run_dir: Path, tmp_path: Path) -> None:
    model = run_dir / "artifacts" / "dus"
    memo = HashMemo(tmp_path / "memo.json")
    before, remembered = sha256_dir(model), memo.sha256(model)
    (model / "README.md").write_text("another card\n")
    (model / "dusk_card_results.json").write_text("{}\n")
    (model / "step-1").mkdir()
    (model / "step-1" / "README.md").write_text("a card at any depth\n")
    assert sha256_dir(model) == before == remembered
    assert HashMemo(tmp_path / "memo.json").sha256(model) == before
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "note": 1}))
    assert sha256_dir(model) != before  # any other file still counts
    assert HashMemo(tmp_path / "memo.json").sha256(model) != before


def test_the_tiny_recipes_evaluated_models_carry_their_scores(tiny_run: TinyRun) -> None:  # noqa: F811
    store = open_store(tiny_run.run_dir)
    stages = {row["name"]: row for row in store.stages(tiny_run.summary.run_id)}
    evaluated = {}
    for row in stages.values():
        if row["kind"] == "eval":
            model_stage = stages[json.loads(row["inputs"])["model"][0]]
            evaluated[model_stage["name"]] = (model_stage, store.artifact(row["cache_key"]))
    assert {"sdpo", "final", "sft_v1"} <= set(evaluated)
    for name, (model_stage, eval_artifact) in evaluated.items():
        stored = store.artifact(model_stage["cache_key"])
        model = Path(stored.path) / ("final" if model_stage["kind"] == "sdpo" else "")
        results = json.loads((Path(eval_artifact.path) / "results.json").read_text())
        scored = {b.title: round(100 * value, 2) for b in H6 if (value := score_of(results, b)) is not None}
        assert scored and model_index(model / "README.md") == scored, name
        assert sha256_dir(Path(stored.path)) == stored.sha256, name  # later stages' keys still name this model
    pretrain = store.artifact(stages["pretrain"]["cache_key"])  # not evaluated: its card has no scores
    assert ModelCard.load(Path(pretrain.path) / "README.md").data.eval_results is None
    store.close()


def test_a_rewritten_card_leaves_a_later_runs_cache_key_as_it_was(run_dir: Path, tmp_path: Path) -> None:
    import yaml

    from dusk.recipe import load_recipe
    from dusk.runner import run_recipe

    model = run_dir / "artifacts" / "dus"  # a dusk model that another recipe takes by path
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"stages": {"again": {"kind": "upscale", "model": str(model), "drop": 1}}}))
    other = tmp_path / "other-run"
    assert run_recipe(load_recipe(recipe), other, show_progress=False).states == {"again": "ran"}
    eval_dir = run_dir / "artifacts" / "eval"
    write_results(eval_dir)
    eval_result(eval_dir, SimpleNamespace(model=str(model)))  # the card and dusk_card_results.json change
    assert model_index(model / "README.md")
    assert run_recipe(load_recipe(recipe), other, show_progress=False).states == {"again": "cached"}
