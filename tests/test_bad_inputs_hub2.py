"""Bad hub ids and paths in recipes, and bad --split/--data-kind (issue 14): one line naming the stage, field and value
(or the flag), exit 2, nothing written. A value written as a path (./, ../, /, ~, a file suffix, two '/') is a path
and must exist; `org/name` is a hub id and must be in the hub cache while HF_HUB_OFFLINE=1."""

from pathlib import Path

import pytest
from test_hub_recipe import cache_dataset, pairs

from tests.bad_input_helpers import assert_refused


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An offline hub cache holding dataset org/mini (a train and a test split), and no model."""
    cache = tmp_path / "hub"
    cache_dataset(cache, "org/mini", {"data/train.jsonl": pairs(4, "hi"), "data/test.jsonl": pairs(6, "yo")})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path.with_name(tmp_path.name + "-datasets")))  # not watched
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    return cache


RECIPE_ROWS = [
    pytest.param("{kind: sft, model: ./models/absent, data: alpaca_gpt4}",
                 ["stage s", "field model", "'./models/absent'", "written as a path"], id="dot-slash-model"),
    pytest.param("{kind: sft, model: runs/a/final, data: alpaca_gpt4}",
                 ["stage s", "field model", "'runs/a/final'", "written as a path"], id="two-slashes-model"),
    pytest.param("{kind: sft, model: ~/absent, data: alpaca_gpt4}",
                 ["stage s", "field model", "'~/absent'", "written as a path"], id="home-model"),
    pytest.param("{kind: sft, model: org/absent, data: alpaca_gpt4}",
                 ["stage s", "field model", "'org/absent'", "HF_HUB_OFFLINE", "hf download org/absent"],
                 id="hub-model-not-cached"),
    pytest.param("{kind: sft, model: tiny-llama, data: data/absent.jsonl}",
                 ["stage s", "field data", "'data/absent.jsonl'", "no such file"], id="relative-data-path"),
    pytest.param("{kind: sft, model: tiny-llama, data: mixes/absent.yaml}",
                 ["stage s", "field data", "'mixes/absent.yaml'", "no such file"], id="relative-mixture-path"),
    pytest.param("{kind: sft, model: tiny-llama, data: org/absent}",
                 ["stage s", "field data", "'org/absent'", "HF_HUB_OFFLINE", "--repo-type dataset"],
                 id="hub-data-not-cached"),
    pytest.param("{kind: mix, sources: [{dataset: org/mini}, {dataset: ./absent.jsonl, max_examples: 2}]}",
                 ["stage s", "sources[1].dataset", "'./absent.jsonl'", "no such file"], id="mixture-source-path"),
    pytest.param("{kind: sft, model: tiny-llama, data: org/mini, data_kind: bogus}",
                 ["stage s", "field data_kind", "unknown record kind", "'bogus'"], id="recipe-unknown-data-kind"),
]  # fmt: skip


@pytest.mark.parametrize(("stage", "culprits"), RECIPE_ROWS)
def test_bad_recipe_value_is_refused_at_the_dry_run(hub, tmp_path, capsys, stage: str, culprits: list[str]) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\nstages:\n  s: {stage}\n")
    assert_refused(["run", str(recipe), "--dry-run"], culprits, capsys, watch=[tmp_path])


QUICK = ["--max-steps", "1", "--seq-len", "64", "--batch-size", "2", "--eval-size", "0", "--no-progress"]


@pytest.mark.parametrize(
    ("extra", "culprits"),
    [
        pytest.param(["--data", "org/mini", "--data-kind", "bogus"],
                     ["--data-kind", "bogus", "unknown record kind", "alpaca"], id="unknown-kind"),
        pytest.param(["--data", "org/mini", "--split", "validation"],
                     ["org/mini@validation", "'validation'", "--split"], id="dataset-id-without-the-split"),
        pytest.param(["--data", "org/mini@test", "--split", "train"], ["--split", "org/mini@test", "twice"],
                     id="split-stated-twice"),
        pytest.param(["--data", "alpaca_gpt4", "--split", "test"], ["--split", "alpaca_gpt4", "hub dataset id"],
                     id="split-of-a-registry-set"),
        pytest.param(["--data", "alpaca_gpt4", "--data-kind", "dolly"],
                     ["--data-kind", "alpaca_gpt4", "its converter is alpaca"], id="kind-of-a-registry-set"),
    ],
)  # fmt: skip
def test_bad_split_or_kind_is_refused(hub, tiny_llama, tmp_path, capsys, extra: list[str], culprits) -> None:
    argv = ["sft", "--model", str(tiny_llama), "--out", str(tmp_path / "out"), *QUICK, *extra]
    assert_refused(argv, culprits, capsys, watch=[tmp_path])
