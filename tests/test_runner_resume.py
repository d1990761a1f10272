"""Kill a run in the middle of a training stage (SIGKILL, as a crash would), run again: the stage resumes from its
checkpoint and ends with the same loss curve as a run that was never interrupted."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from dusk.recipe import load_recipe
from dusk.runner import plan_text, run_recipe
from dusk.stages import KINDS
from dusk.store import open_store

pytestmark = pytest.mark.skipif("pretrain" not in KINDS, reason="the training stages have not landed")
TEXT = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness, "
    "it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, it was the season of "
    "Darkness, it was the spring of hope, it was the winter of despair. "
)


def recipe(tmp_path: Path) -> Path:
    text = tmp_path / "book.txt"
    text.write_text(TEXT * 40)
    data = {
        "name": "resume",
        "stages": {
            "dus": {"kind": "upscale", "model": "tiny-llama", "drop": 1},
            "pt": {"kind": "pretrain", "from": "dus", "data": str(text), "max_steps": 200, "seq_len": 32,
                   "batch_size": 2, "save_every": 3, "eval_size": 0, "lr": 1e-3, "progress": False},
        },
    }  # fmt: skip
    path = tmp_path / "resume.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def curve(run_dir: Path) -> list[tuple[int, float]]:
    lines = (run_dir / "artifacts" / "pt" / "dusk_train_log.jsonl").read_text().splitlines()
    return [(row["step"], row["loss"]) for row in map(json.loads, lines) if "loss" in row]


def kill_after_checkpoint(path: Path, run_dir: Path, step: int) -> None:
    command = [sys.executable, "-m", "dusk", "run", str(path), "--run-dir", str(run_dir), "--no-report"]
    process = subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = run_dir / "work" / "pt" / "checkpoints" / f"step-{step:08d}" / "state.json"
    deadline = time.monotonic() + 120
    while not target.exists():
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_killed_training_stage_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    path = recipe(tmp_path)
    killed = tmp_path / "killed"
    kill_after_checkpoint(path, killed, step=3)
    assert not (killed / "artifacts" / "pt").exists()
    plan = plan_text(load_recipe(path), killed)
    assert [line.split()[3] for line in plan.splitlines()[1:3]] == ["cached", "resumable"]

    summary = run_recipe(load_recipe(path), killed, show_progress=False)
    assert summary.states == {"dus": "cached", "pt": "resumed"}
    store = open_store(killed)
    assert [row["state"] for row in store.stages(summary.run_id)] == ["cached", "resumed"]
    assert store.runs()[0]["status"] == "killed"  # the killed run never finished; the next run marked it

    clean = tmp_path / "clean"
    assert run_recipe(load_recipe(path), clean, show_progress=False).states == {"dus": "ran", "pt": "ran"}
    resumed_curve, clean_curve = curve(killed), curve(clean)
    assert [step for step, _ in resumed_curve] == list(range(1, 201))
    assert [loss for _, loss in resumed_curve] == pytest.approx([loss for _, loss in clean_curve], rel=1e-4)
    assert run_recipe(load_recipe(path), killed, show_progress=False).states == {"dus": "cached", "pt": "cached"}
    assert not list((clean / "work" / "pt").glob("**/checkpoints")), "a finished stage's checkpoints were kept"
    assert (clean / "work" / "pt" / "log.jsonl").is_file(), "the step log went with the checkpoints"
    assert "stage pt: deleted its checkpoints" in (clean / "logs" / "pt.log").read_text()


def test_keep_checkpoints_keeps_a_finished_stage_resumable_state(tmp_path: Path) -> None:
    path = recipe(tmp_path)
    short = load_recipe(path, ["pt.max_steps=6"])
    kept = run_recipe(short, tmp_path / "kept", show_progress=False, keep_checkpoints=True)
    assert kept.states == {"dus": "ran", "pt": "ran"}
    steps = sorted(p.name for p in (tmp_path / "kept" / "work" / "pt" / "checkpoints").iterdir())
    assert steps == ["step-00000003", "step-00000006"]
