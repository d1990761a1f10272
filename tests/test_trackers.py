"""Experiment trackers (`--report-to`, dusk.train.tracking): a tiny SFT run's TensorBoard events read back equal to
its step log, W&B offline; the run id in dusk_train.json and in the results store."""

import json
from pathlib import Path

import pytest

from dusk.train import dpo, sft
from dusk.train.config import DPOConfig, SFTConfig
from tests.train_fixtures import alpaca_pairs, log_lines, preference_pairs, single_thread, tiny_config  # noqa: F401


def read_scalars(folder: Path) -> dict[str, dict[int, float]]:
    """Every scalar of the TensorBoard event files under `folder`, by tag then step (tensorboard's own reader)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, dict[int, float]] = {}
    for events in sorted(folder.rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events.parent), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            found.setdefault(tag, {}).update({event.step: event.value for event in accumulator.Scalars(tag)})
    return found


def test_tensorboard_events_hold_every_step_log_field(tiny_llama: Path, alpaca_pairs: Path, tmp_path: Path) -> None:  # noqa: F811
    pytest.importorskip("tensorboard")
    cfg = tiny_config(
        SFTConfig, tiny_llama, alpaca_pairs, tmp_path / "sft", max_steps=4, eval_size=8, eval_every=2,
        report_to="tensorboard",
    )  # fmt: skip
    out = sft.run(cfg)
    steps = log_lines(cfg.work_dir / "log.jsonl")
    evals = log_lines(cfg.work_dir / "log.jsonl", "eval")
    scalars = read_scalars(cfg.work_dir / "trackers")
    assert len(steps) == 4 and [e["step"] for e in evals] == [0, 2, 4]
    for field in ("loss", "lr", "grad_norm", "tokens", "tokens_per_s"):
        assert scalars[field] == pytest.approx({line["step"]: line[field] for line in steps}, rel=1e-6), field
    for field in ("eval_loss", "eval_loss_se"):
        assert scalars[field] == pytest.approx({e["step"]: e[field] for e in evals}, rel=1e-6), field
    tracker = json.loads((out / "dusk_train.json").read_text())["tracker"]
    assert tracker["name"] == "tensorboard" and Path(tracker["dir"]).is_relative_to(cfg.work_dir / "trackers")


def test_tensorboard_gets_the_dpo_rewards(tiny_llama: Path, preference_pairs: Path, tmp_path: Path) -> None:  # noqa: F811
    pytest.importorskip("tensorboard")
    cfg = tiny_config(DPOConfig, tiny_llama, preference_pairs, tmp_path / "dpo", max_steps=2, report_to="tensorboard")
    dpo.run(cfg)
    steps = log_lines(cfg.work_dir / "log.jsonl")
    scalars = read_scalars(cfg.work_dir / "trackers")
    for field in ("loss", "reward_chosen", "reward_rejected", "reward_margin", "reward_accuracy"):
        assert scalars[field] == pytest.approx({line["step"]: line[field] for line in steps}, rel=1e-6), field


def test_wandb_offline_run_id_in_the_train_record(
    tiny_llama: Path,
    alpaca_pairs: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "unset")  # recorded, so the offline mode dusk sets is undone after the test
    monkeypatch.delenv("WANDB_MODE")  # dusk's default: offline
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = tiny_config(SFTConfig, tiny_llama, alpaca_pairs, tmp_path / "sft", max_steps=2, report_to="wandb")
    out = sft.run(cfg)
    tracker = json.loads((out / "dusk_train.json").read_text())["tracker"]
    assert tracker["name"] == "wandb" and tracker["run_id"]
    runs = list((cfg.work_dir / "trackers" / "wandb").glob(f"offline-run-*-{tracker['run_id']}"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb")), "an offline W&B run holding its data file"


RECIPE = """
name: tracked
stages:
  sft: {kind: sft, model: tiny-llama, data: alpaca_gpt4, max_examples: 8, max_steps: 2, seq_len: 96, batch_size: 2,
        eval_size: 0, progress: false, report_to: wandb}
"""


def test_recipe_stage_records_its_tracker_run_id_in_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    from recipe_fixtures import real_data_dir

    from dusk.recipe import load_recipe
    from dusk.runner import run_recipe
    from dusk.store import open_store, tracker_run_ids

    monkeypatch.setenv("DUSK_DATA_DIR", str(real_data_dir()))
    monkeypatch.setenv("WANDB_MODE", "unset")
    monkeypatch.delenv("WANDB_MODE")  # dusk's default: offline
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "tracked.yaml").write_text(RECIPE)
    summary = run_recipe(load_recipe(tmp_path / "tracked.yaml"), tmp_path / "run", show_progress=False)
    assert summary.states == {"sft": "ran"}
    store = open_store(tmp_path / "run", must_exist=True)
    (row,) = store.stages(store.run()["id"])
    record = json.loads((Path(store.artifact(row["cache_key"]).path) / "dusk_train.json").read_text())
    assert record["tracker"]["name"] == "wandb" and record["tracker"]["run_id"]
    assert tracker_run_ids(store, store.run()["id"]) == {"sft": record["tracker"]["run_id"]}
    assert store.training(row["cache_key"]).tracker_run_id == record["tracker"]["run_id"]
