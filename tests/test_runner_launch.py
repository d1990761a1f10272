"""`dusk run` across processes: a recipe's `launch:` (and --processes) runs training stages as torchrun child ranks.

Fast: how launch values layer (recipe, stage, command line) and what enters the cache keys (training's process count;
never evaluation's); a failed rank's message. Slow: recipes/tiny.yaml in 2 CPU processes against the 1-process run,
and a child rank killed with SIGKILL."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from recipe_fixtures import TinyRun, real_data_dir, tiny_run  # noqa: F401
from train_fixtures import alpaca_pairs  # noqa: F401

from dusk.errors import DuskError
from dusk.launch_run import LaunchFailed, _failure
from dusk.recipe import load_recipe
from dusk.runner import plan_text, run_recipe
from dusk.store import open_store

TRAIN_KINDS = ("pretrain", "sft", "dpo", "sdpo")


def small_recipe(tmp_path: Path, model: Path, data: Path, launch: dict | None = None, **sft: object) -> Path:
    """One SFT stage and one eval stage, both on the tiny model (external inputs: their keys are known at plan time)."""
    stages = {
        "sft": {"kind": "sft", "model": str(model), "data": str(data), "max_steps": 2, "seq_len": 32, "batch_size": 2,
                "eval_size": 0, "progress": False, **sft},
        "ev": {"kind": "eval", "model": str(model), "tasks": ["arc_challenge"], "limit": 1},
    }  # fmt: skip
    recipe = {"name": "launch-test", "stages": stages, **({"launch": launch} if launch else {})}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def keys(recipe_path: Path, run_dir: Path, **load: object) -> dict[str, str]:
    """Stage -> the cache key prefix the dry-run plan shows."""
    lines = plan_text(load_recipe(recipe_path, **load), run_dir).splitlines()[1:-1]
    return {line.split()[1]: re.search(r" ([0-9a-f]{12})\b", line).group(1) for line in lines}


def test_training_keys_count_processes_and_eval_keys_do_not(tiny_llama: Path, alpaca_pairs: Path, tmp_path) -> None:  # noqa: F811
    real_data_dir()
    path = small_recipe(tmp_path, tiny_llama, alpaca_pairs)
    plain = keys(path, tmp_path / "run")
    one = keys(path, tmp_path / "run", launch={"processes": 1})
    two = keys(path, tmp_path / "run", launch={"processes": 2})
    four = keys(path, tmp_path / "run", launch={"processes": 4})
    assert one == plain  # one process is today's in-process run, cache keys included
    assert len({plain["sft"], two["sft"], four["sft"]}) == 3  # the global batch changes with the processes
    assert plain["ev"] == two["ev"] == four["ev"]  # evaluation results do not depend on them
    plan = plan_text(load_recipe(path, launch={"processes": 2, "shard": "fsdp"}), tmp_path / "run")
    assert next(line for line in plan.splitlines() if " sft " in line).endswith("2 processes, fsdp")
    assert next(line for line in plan.splitlines() if " ev " in line).endswith("2 processes")
    assert "2 processes" not in plan_text(load_recipe(path), tmp_path / "run")


def test_stage_launch_wins_over_recipe_and_command_line(tiny_llama: Path, alpaca_pairs: Path, tmp_path) -> None:  # noqa: F811
    path = small_recipe(tmp_path, tiny_llama, alpaca_pairs, launch={"processes": 4, "device": "cpu"})
    recipe = load_recipe(path)
    assert (recipe.stages["sft"].launch.processes, recipe.stages["sft"].launch.device) == (4, "cpu")
    assert load_recipe(path, launch={"processes": 2}).stages["sft"].launch.processes == 2  # --processes over launch:
    data = yaml.safe_load(path.read_text())
    data["stages"]["sft"]["launch"] = {"processes": 3}
    path.write_text(yaml.safe_dump(data))
    stage = load_recipe(path, launch={"processes": 2}).stages["sft"]
    assert (stage.launch.processes, stage.launch.device) == (3, "cpu")  # field by field over the recipe's
    assert "launch" not in stage.fields and "launch" not in stage.settings
    override = load_recipe(path, ["sft.launch={processes: 5}"]).stages["sft"]
    assert override.launch.processes == 5


def test_shard_becomes_the_training_config_field(tiny_llama: Path, alpaca_pairs: Path, tmp_path) -> None:  # noqa: F811
    from dusk.stages import field_specs, get_kind

    if "shard" not in field_specs(get_kind("sft")):
        pytest.skip("the training config has no `shard` field yet")
    path = small_recipe(tmp_path, tiny_llama, alpaca_pairs, launch={"processes": 2, "shard": "fsdp"})
    assert load_recipe(path).stages["sft"].settings["shard"] == "fsdp"
    own = small_recipe(tmp_path, tiny_llama, alpaca_pairs, launch={"processes": 2, "shard": "fsdp"}, shard="none")
    assert load_recipe(own).stages["sft"].settings["shard"] == "none"  # the stage's own field wins
    assert load_recipe(path, launch={"shard": "none"}).stages["sft"].settings["shard"] == "none"


def test_a_failed_rank_is_named_with_its_last_lines(tmp_path: Path) -> None:
    (tmp_path / "rank-0.log").write_text("starting\n")
    (tmp_path / "rank-1.log").write_text(
        "dusk launch: rank 1\nTraceback (most recent call last):\nRuntimeError: boom\n"
    )
    (tmp_path / "rank-1.error").write_text(json.dumps({"message": "RuntimeError: boom", "input": False}))
    error = _failure(tmp_path, 2, 1, "stage sft")
    assert isinstance(error, LaunchFailed) and isinstance(error, OSError)  # the CLI prints it and exits 1
    assert str(error).startswith("stage sft: rank 1 of 2 failed: RuntimeError: boom; its last lines")
    assert str(error).rstrip().endswith("RuntimeError: boom") and "rank-1.log" in str(error)
    (tmp_path / "rank-0.error").write_text(json.dumps({"message": "--data x.jsonl: no records", "input": True}))
    refusal = _failure(tmp_path, 2, 2, "stage sft")
    assert type(refusal) is DuskError and str(refusal) == "stage sft: rank 0 of 2: --data x.jsonl: no records"


def _artifact_files(run_dir: Path, stage: str) -> list[str]:
    """The artifact's files, less the card's results copy (written only where an eval scored the model)."""
    root = run_dir / "artifacts" / stage
    if not root.is_dir():
        return [root.name]
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.name != "dusk_card_results.json")


def _step_log(run_dir: Path, stage: str = "pretrain") -> list[dict]:
    return [json.loads(line) for line in (run_dir / "work" / stage / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_tiny_recipe_in_two_processes(tiny_run: TinyRun, tmp_path: Path) -> None:  # noqa: F811
    """Every stage of tiny.yaml (its evaluations cut to the final model's, each launch costing process start-ups)."""
    os.environ.setdefault("DUSK_DATA_DIR", str(real_data_dir()))
    recipe = load_recipe(tiny_run.recipe, ["evals.for_each=[final]"], launch={"processes": 2, "device": "cpu"})
    started = time.perf_counter()
    summary = run_recipe(recipe, tmp_path / "run", show_progress=False)
    print(f"tiny.yaml in 2 processes: {time.perf_counter() - started:.1f} s (1 process: {tiny_run.seconds:.1f} s)")
    assert summary.states == dict.fromkeys(recipe.stages, "ran") and set(recipe.stages) < set(tiny_run.summary.states)
    one, two = open_store(tiny_run.run_dir), open_store(tmp_path / "run")
    one_rows = {row["name"]: row for row in one.stages(tiny_run.summary.run_id)}
    two_rows = {row["name"]: row for row in two.stages(summary.run_id)}
    for name, stage in recipe.stages.items():
        assert _artifact_files(tmp_path / "run", name) == _artifact_files(tiny_run.run_dir, name), name
        launch = tmp_path / "run" / "work" / name / "launch"
        if stage.kind not in (*TRAIN_KINDS, "eval", "contamination"):
            assert not launch.exists(), name  # the other kinds run in the runner's process
            continue
        assert sorted(p.name for p in launch.glob("rank-*")) == ["rank-0.log", "rank-1.log"], name
        if stage.kind not in TRAIN_KINDS:
            continue
        one_train, two_train = one.training(one_rows[name]["cache_key"]), two.training(two_rows[name]["cache_key"])
        assert one_rows[name]["cache_key"] != two_rows[name]["cache_key"], name
        assert two_train.steps == one_train.steps and len(two_train.curve) == len(one_train.curve), name
    two_tokens = [line["tokens"] for line in _step_log(tmp_path / "run")]
    assert two_tokens == [2 * line["tokens"] for line in _step_log(tiny_run.run_dir)]  # packed: twice the batch


@pytest.mark.slow
def test_eval_in_two_processes_equals_one_and_shares_its_key(tiny_llama: Path, alpaca_pairs: Path, tmp_path) -> None:  # noqa: F811
    real_data_dir()
    path = small_recipe(tmp_path, tiny_llama, alpaca_pairs)
    data = yaml.safe_load(path.read_text())
    del data["stages"]["sft"]
    data["stages"]["ev"]["tasks"] = ["arc_challenge", "gsm8k"]
    data["stages"]["ev"].update(limit=3, max_new_tokens=8)
    path.write_text(yaml.safe_dump(data))
    one = run_recipe(load_recipe(path), tmp_path / "one", show_progress=False)
    in_two = load_recipe(path, launch={"processes": 2, "device": "cpu"})
    assert plan_text(in_two, tmp_path / "one").endswith("1 cached, 0 resumable, 0 to run")  # the same key
    two = run_recipe(in_two, tmp_path / "two", show_progress=False)
    assert one.states == two.states == {"ev": "ran"}
    assert sorted(p.name for p in (tmp_path / "two/work/ev/launch").glob("rank-*")) == ["rank-0.log", "rank-1.log"]
    assert _scores(tmp_path / "one") == _scores(tmp_path / "two") != []


def _scores(run_dir: Path) -> list[dict]:
    store = open_store(run_dir)
    return [vars(score) for score in store.scores(store.stages(1)[0]["cache_key"])]


@pytest.mark.slow
def test_a_killed_rank_fails_the_stage(tiny_llama: Path, alpaca_pairs: Path, tmp_path: Path) -> None:  # noqa: F811
    path = small_recipe(tmp_path, tiny_llama, alpaca_pairs, launch={"processes": 2, "device": "cpu"}, max_steps=100000)
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "dusk", "run", str(path), "--run-dir", str(run_dir), "--no-report"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids = {rank: _rank_pid(run_dir / "work/sft/launch" / f"rank-{rank}.log", proc) for rank in (0, 1)}
    os.kill(pids[1], signal.SIGKILL)
    _, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr, stderr
    error = stderr[stderr.index("dusk: error: ") :]
    assert error.startswith("dusk: error: stage sft: rank 1 of 2 failed: killed by signal 9 (SIGKILL)"), error
    assert "dusk launch: rank 1 of 2" in error  # the rank's last lines
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)  # the surviving rank was stopped too
    store = open_store(run_dir)
    (row,) = [row for row in store.stages(1) if row["name"] == "sft"]
    assert row["state"] == "failed" and "killed by signal 9" in row["error"]
    assert not (run_dir / "artifacts" / "sft").exists()


def _rank_pid(log: Path, proc: subprocess.Popen, timeout: float = 150) -> int:
    """The pid a launched rank writes on its log's first line, once it has started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        text = log.read_text() if log.is_file() else ""
        if "\n" in text:  # the first line is complete
            return int(text.split("\n", 1)[0].rsplit(" ", 1)[1])
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"no rank started within {timeout} s ({log})")
