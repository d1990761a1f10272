"""The runner on DUS-only recipes (seconds): order, cache keys, skipping, re-running descendants, dry-run, logs."""

import json
from pathlib import Path

import pytest
import yaml

from dusk.errors import DuskError
from dusk.recipe import load_recipe
from dusk.runner import artifact_path, plan_text, run_recipe
from dusk.store import open_store


def chain_recipe(tmp_path: Path, tiny_llama_4: Path) -> Path:
    data = {
        "name": "chain",
        "stages": {
            "dus": {"kind": "upscale", "model": str(tiny_llama_4), "drop": 1},  # 4 -> 6 layers
            "dus2": {"kind": "upscale", "from": "dus", "drop": 2},  # 6 -> 8
            "dus3": {"kind": "upscale", "from": "dus2", "drop": 4},  # 8 -> 8
            "side": {"kind": "upscale", "model": "tiny-llama", "drop": 1},  # independent of the chain
        },
    }
    path = tmp_path / "chain.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def layers(run_dir: Path, stage: str) -> int:
    return json.loads((artifact_path(run_dir, stage) / "config.json").read_text())["num_hidden_layers"]


def test_runs_in_order_then_everything_is_cached(tmp_path: Path, tiny_llama_4: Path) -> None:
    path, run_dir = chain_recipe(tmp_path, tiny_llama_4), tmp_path / "run"
    first = run_recipe(load_recipe(path), run_dir, show_progress=False)
    assert first.states == {"dus": "ran", "dus2": "ran", "dus3": "ran", "side": "ran"}
    assert [layers(run_dir, s) for s in ("dus", "dus2", "dus3")] == [6, 8, 8]
    mtimes = {s: (artifact_path(run_dir, s) / "config.json").stat().st_mtime_ns for s in first.states}
    assert all((run_dir / "logs" / f"{s}.log").read_text() for s in first.states)

    plan = plan_text(load_recipe(path), run_dir)
    assert plan.count("cached") == 4 + 1 and "0 resumable, 0 to run" in plan

    second = run_recipe(load_recipe(path), run_dir, show_progress=False)
    assert set(second.states.values()) == {"cached"}
    assert mtimes == {s: (artifact_path(run_dir, s) / "config.json").stat().st_mtime_ns for s in first.states}
    store = open_store(run_dir)
    assert [row["state"] for row in store.stages(second.run_id)] == ["cached"] * 4
    assert [row["status"] for row in store.runs()] == ["complete", "complete"]


def test_changing_a_field_reruns_that_stage_and_its_descendants_only(tmp_path: Path, tiny_llama_4: Path) -> None:
    path, run_dir = chain_recipe(tmp_path, tiny_llama_4), tmp_path / "run"
    run_recipe(load_recipe(path), run_dir, show_progress=False)
    changed = load_recipe(path, ["dus2.drop=3"])  # 6 -> 6 layers
    plan = plan_text(changed, run_dir)
    lines = {line.split()[1]: line for line in plan.splitlines()[1:-1]}
    assert "cached" in lines["dus"] and "cached" in lines["side"]
    assert "to run" in lines["dus2"] and "(after inputs)" in lines["dus3"]
    summary = run_recipe(changed, run_dir, show_progress=False)
    assert summary.states == {"dus": "cached", "dus2": "ran", "dus3": "ran", "side": "cached"}
    assert layers(run_dir, "dus2") == 6 and layers(run_dir, "dus3") == 4
    # back to the original value: dus2's artifact was overwritten, so it runs again (and dus3 with it)
    again = run_recipe(load_recipe(path), run_dir, show_progress=False)
    assert again.states == {"dus": "cached", "dus2": "ran", "dus3": "ran", "side": "cached"}


def test_a_changed_input_model_invalidates_the_cache(tmp_path: Path, tiny_llama_4: Path) -> None:
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_llama_4, model)
    recipe_path = tmp_path / "r.yaml"
    recipe_path.write_text(yaml.safe_dump({"stages": {"dus": {"kind": "upscale", "model": str(model), "drop": 1}}}))
    run_dir = tmp_path / "run"
    assert run_recipe(load_recipe(recipe_path), run_dir, show_progress=False).states == {"dus": "ran"}
    assert run_recipe(load_recipe(recipe_path), run_dir, show_progress=False).states == {"dus": "cached"}
    config = json.loads((model / "config.json").read_text())
    config["rms_norm_eps"] = 1e-5
    (model / "config.json").write_text(json.dumps(config))
    assert run_recipe(load_recipe(recipe_path), run_dir, show_progress=False).states == {"dus": "ran"}


def test_a_failing_stage_is_recorded_and_stops_the_run(tmp_path: Path, tiny_llama_4: Path) -> None:
    data = {
        "stages": {
            "dus": {"kind": "upscale", "model": str(tiny_llama_4), "drop": 1},  # 4 -> 6 layers
            "after": {"kind": "upscale", "from": "dus", "drop": 6},  # must be < 6: known only once dus ran
            "last": {"kind": "upscale", "from": "after", "drop": 1},
        }
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(DuskError, match="--drop 6: must be in"):
        run_recipe(load_recipe(path), tmp_path / "run", show_progress=False)
    store = open_store(tmp_path / "run")
    run = store.run()
    assert run["status"] == "failed"
    rows = {row["name"]: row for row in store.stages(run["id"])}
    assert set(rows) == {"dus", "after"} and rows["dus"]["state"] == "ran"
    assert rows["after"]["state"] == "failed" and "--drop 6" in rows["after"]["error"]
    assert not artifact_path(tmp_path / "run", "after").exists()


def test_artifacts_stay_inside_the_run_directory(tmp_path: Path) -> None:
    with pytest.raises(DuskError, match="would not lie inside"):
        artifact_path(tmp_path / "run", "../../etc")
