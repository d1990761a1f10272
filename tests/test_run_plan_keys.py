"""A training stage's cache key follows what the stage makes, not how it is watched: a progress bar, a tracker or
kept checkpoints leave the key (and so the cached artifact) as it was; a training setting changes it."""

from pathlib import Path

from test_runner_launch import keys, small_recipe
from train_fixtures import alpaca_pairs  # noqa: F401


def test_watching_a_training_stage_keeps_its_key(tiny_llama: Path, alpaca_pairs: Path, tmp_path: Path) -> None:  # noqa: F811
    plain = keys(small_recipe(tmp_path, tiny_llama, alpaca_pairs), tmp_path / "run")["sft"]
    watched = small_recipe(tmp_path, tiny_llama, alpaca_pairs, progress=True, report_to="tensorboard",
                           keep_checkpoints=3)  # fmt: skip
    assert keys(watched, tmp_path / "run")["sft"] == plain
    assert keys(small_recipe(tmp_path, tiny_llama, alpaca_pairs, lr=1e-3), tmp_path / "run")["sft"] != plain
