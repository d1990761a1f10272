"""Hugging Face ids in recipes and training data (issue 14): a recipe whose model and data are hub ids runs from a
hub cache built on disk, offline; --split and --data-kind choose how a hub dataset is read."""

import json
from pathlib import Path

import pytest
from test_hub import cache_model

from dusk.cli import main
from dusk.recipe import load_recipe
from dusk.runner import run_recipe
from tests.train_fixtures import single_thread  # noqa: F401


def cache_dataset(cache: Path, repo: str, files: dict[str, list[dict]]) -> Path:
    """A dataset repository in the hub cache's layout, its data files (path -> records as JSONL)."""
    storage = cache / f"datasets--{repo.replace('/', '--')}"
    snapshot = storage / "snapshots" / "abc"
    for name, records in files.items():
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).write_text("".join(json.dumps(record) + "\n" for record in records))
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / "main").write_text("abc")
    return snapshot


def pairs(n: int, word: str) -> list[dict]:
    return [{"instruction": f"Say {word} {i} times.", "output": " ".join([word] * (i + 1))} for i in range(n)]


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_llama: Path) -> Path:
    """An offline hub cache with model org/tiny and dataset org/mini (train: 4 pairs, test: 6 pairs)."""
    cache = tmp_path / "hub"
    cache_model(cache, "org/tiny", tiny_llama)
    cache_dataset(cache, "org/mini", {"data/train.jsonl": pairs(4, "hi"), "data/test.jsonl": pairs(6, "yo")})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    return cache


RECIPE = """
name: hubbed
defaults:
  sft: {max_steps: 1, seq_len: 64, batch_size: 2, eval_size: 0, progress: false}
stages:
  mixed: {kind: mix, sources: [{dataset: org/mini@test, max_examples: 3}, {dataset: org/mini, max_examples: 2}]}
  sft_hub: {kind: sft, model: org/tiny, data: org/mini}
  sft_mix: {kind: sft, model: org/tiny@main, data: mixed}
"""


def test_a_recipe_of_hub_ids_runs_offline(hub: Path, tmp_path: Path) -> None:
    (tmp_path / "hubbed.yaml").write_text(RECIPE)
    summary = run_recipe(load_recipe(tmp_path / "hubbed.yaml"), tmp_path / "run", show_progress=False)
    assert set(summary.states.values()) == {"ran"}
    trained = json.loads((tmp_path / "run" / "artifacts" / "sft_hub" / "dusk_train.json").read_text())
    assert trained["train_sequences"] == 4 and trained["source_model"].startswith(str(hub))
    mixed = [json.loads(line) for line in (tmp_path / "run" / "artifacts" / "mixed" / "data.jsonl").open()]
    sources = sorted(record["provenance"]["dataset"] for record in mixed)
    assert sources == ["org/mini"] * 2 + ["org/mini@test"] * 3
    assert sum("yo" in record["response"] for record in mixed) == 3  # the test split's records


QUICK = ["--max-steps", "1", "--seq-len", "64", "--batch-size", "2", "--eval-size", "0", "--no-progress"]


def test_split_flag_reads_that_split(hub: Path, tmp_path: Path) -> None:
    argv = ["sft", "--model", "org/tiny", "--data", "org/mini", "--split", "test", "--out", str(tmp_path / "o")]
    assert main([*argv, *QUICK]) == 0
    record = json.loads((tmp_path / "o" / "dusk_train.json").read_text())
    assert record["train_sequences"] == 6 and record["config"]["split"] == "test"


def test_kind_flag_chooses_the_converter(hub: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Rows with a text and prompt/response read as instruction records by default; --data-kind text reads the text."""
    rows = [{"text": f"Plain text number {i} for continued pretraining.", "prompt": "p", "response": "r"}
            for i in range(8)]  # fmt: skip
    cache_dataset(hub, "org/both", {"data/train.jsonl": rows})
    argv = ["pretrain", "--model", "org/tiny", "--data", "org/both", *QUICK]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 2
    assert "holds instruction records, not text records" in capsys.readouterr().err
    assert main([*argv, "--data-kind", "text", "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "dusk_train.json").read_text())["config"]["data_kind"] == "text"
