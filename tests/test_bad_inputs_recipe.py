"""Bad recipes and run directories: each is refused before any work with one line naming the culprit, exit code 2,
and nothing in the run directory (earlier results included) is touched. Plus the run-level faults: two runs on one
run directory, a killed run, Ctrl-C, a closed output pipe, a full disk."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from bad_input_helpers import assert_refused, check_refusal, run_dusk, snapshot

from dusk.cli import main
from dusk.recipe import load_recipe
from dusk.run_lock import hold_run_dir
from dusk.store import open_store


def write_recipe(tmp_path: Path, data: dict | str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def run_dir_with_results(tmp_path: Path) -> Path:
    """A run directory holding earlier results that a refused run must leave alone."""
    run_dir = tmp_path / "run"
    for folder in ("artifacts/dus", "work/sft", "logs"):
        (run_dir / folder).mkdir(parents=True)
    (run_dir / "artifacts/dus/config.json").write_text("{}")
    (run_dir / "work/sft/steps.jsonl").write_text("{}\n")
    (run_dir / "logs/dus.log").write_text("done\n")
    return run_dir


def dus(model: str = "tiny-llama", **more) -> dict:
    return {"kind": "upscale", "model": model, "drop": 1, **more}


def eval_stage(**more) -> dict:
    return {"kind": "eval", "tasks": ["arc_challenge"], "limit": 1, **more}


# (recipe content, extra argv, culprit substrings); the recipe is a dict (YAML-dumped) or raw text.
BAD_RECIPES = [
    pytest.param({"stages": {"": dus()}}, [], ["stage name ''", "identifier"], id="empty-stage-name"),
    pytest.param(
        "stages:\n  1: {kind: upscale, model: tiny-llama, drop: 1}\n", [], "stage name 1", id="int-stage-name"
    ),
    pytest.param({"stages": {"..": dus()}}, [], "stage name '..'", id="dotdot-stage-name"),
    pytest.param({"stages": {"a/b": dus()}}, [], "stage name 'a/b'", id="slash-stage-name"),
    pytest.param({"stages": {"-x": dus()}}, [], "stage name '-x'", id="dash-first-stage-name"),
    pytest.param({"name": "../../escape", "stages": {"d": dus()}}, [], "name '../../escape'", id="name-escapes-runs"),
    pytest.param({"name": "/tmp/abs", "stages": {"d": dus()}}, [], "name '/tmp/abs'", id="name-absolute"),
    pytest.param({"name": 7, "stages": {"d": dus()}}, [], "name 7", id="name-not-text"),
    pytest.param("stages: [\n", [], "not valid YAML", id="not-yaml"),
    pytest.param("- a\n- b\n", [], "mapping", id="recipe-is-a-list"),
    pytest.param({"name": "x"}, [], "no stages", id="no-stages"),
    pytest.param({"stages": {"d": dus()}, "stagse": {}}, [], "unknown key 'stagse'", id="unknown-top-key"),
    pytest.param({"stages": {"d": {"kind": "upscal", "model": "tiny-llama"}}}, [], "upscal", id="unknown-kind"),
    pytest.param({"stages": {"d": {"model": "tiny-llama"}}}, [], "missing `kind:`", id="missing-kind"),
    pytest.param({"stages": {"d": dus(dorp=2)}}, [], "unknown field 'dorp'", id="unknown-field"),
    pytest.param({"stages": {"d": dus(drop="two")}}, [], ["stage d", "drop"], id="field-wrong-type"),
    pytest.param({"stages": {"d": dus(out="/tmp/x")}}, [], ["'out'", "runner"], id="runner-owned-field"),
    pytest.param(
        {
            "stages": {
                "a": {"kind": "upscale", "from": "b", "drop": 1},
                "b": {"kind": "upscale", "from": "a", "drop": 1},
            }
        },
        [],
        "cycle",
        id="cycle",
    ),  # fmt: skip
    pytest.param({"stages": {"s": {"kind": "upscale", "from": "nope", "drop": 1}}}, [], "'nope'", id="missing-input"),
    pytest.param({"stages": {"d": dus(model="no/such/model")}}, [], "no/such/model", id="model-missing"),
    pytest.param({"stages": {"d": dus(model="NOTAMODEL")}}, [], ["NOTAMODEL", "not a model directory"], id="model-dir"),
    pytest.param({"stages": {"d": dus(model="FILE")}}, [], ["FILE", ".gguf"], id="model-is-a-file"),
    pytest.param({"stages": {"d": dus(model="SDPO")}}, [], ["final"], id="model-is-sdpo-parent"),
    pytest.param(
        {"stages": {"d": dus(), "e": eval_stage(**{"from": "d"}), "s": {"kind": "sft", "from": "e", "data": "alpaca"}}},
        [],
        ["stage s", "'e'", "model"],
        id="from-wrong-kind",
    ),  # fmt: skip
    pytest.param(
        {"stages": {"d": dus(), "s": {"kind": "sft", "model": "tiny-llama", "data": "d"}}},
        [],
        ["stage s", "field data", "'d'"],
        id="data-from-model-stage",
    ),  # fmt: skip
    pytest.param({"stages": {"d": dus(drop=2)}}, [], ["stage d", "drop 2", "2 layers"], id="drop-too-large"),
    pytest.param({"stages": {"d": dus()}}, ["d.drop=5"], ["stage d", "drop 5"], id="drop-override-too-large"),
    pytest.param(
        {"stages": {"p": {"kind": "dpo", "model": "tiny-llama", "data": "ultrafeedback", "steps": 2}}},
        [],
        ["stage p", "'steps'", "kind: sdpo"],
        id="dpo-with-sdpo-steps",
    ),  # fmt: skip
    pytest.param({"stages": {"d": dus()}}, ["x.drop=2"], "no stage 'x'", id="override-unknown-stage"),
    pytest.param({"stages": {"d": dus()}}, ["d.nope=2"], "no field 'nope'", id="override-unknown-field"),
    pytest.param({"stages": {"d": dus()}}, ["d.drop"], "STAGE.FIELD=VALUE", id="override-malformed"),
    pytest.param({"stages": {"d": dus()}}, ["budget=gpu"], "budget 'gpu'", id="budget-unknown"),
    pytest.param({"stages": {"d": dus()}, "report": {"tables": [{"rows": ["x"]}]}}, [], "'x'", id="report-row"),
    pytest.param({"stages": {"d": dus(), "e": eval_stage(for_each=[])}}, [], "for_each", id="for-each-empty"),
]


@pytest.mark.parametrize(("recipe", "extra", "culprits"), BAD_RECIPES)
def test_bad_recipe_is_refused_and_the_run_directory_untouched(
    recipe, extra, culprits, tmp_path: Path, run_dir_with_results: Path, capsys
) -> None:
    (tmp_path / "NOTAMODEL").mkdir()
    (tmp_path / "NOTAMODEL" / "notes.txt").write_text("not a model")
    (tmp_path / "FILE").write_text("x")
    (tmp_path / "SDPO" / "final").mkdir(parents=True)
    (tmp_path / "SDPO" / "final" / "config.json").write_text("{}")
    if isinstance(recipe, dict):
        recipe = yaml.safe_dump(recipe, sort_keys=False)
    for name in ("NOTAMODEL", "FILE", "SDPO"):
        recipe = recipe.replace(f"model: {name}", f"model: {tmp_path / name}")
    path = write_recipe(tmp_path, recipe)
    for dry in ([], ["--dry-run"]):
        argv = ["run", str(path), *extra, "--run-dir", str(run_dir_with_results), *dry]
        assert_refused(argv, culprits, capsys, watch=[run_dir_with_results])
    assert not (tmp_path.parent / "escape").exists() and not Path("/tmp/abs").exists()


@pytest.mark.parametrize(
    ("make", "culprit"),
    [
        pytest.param(lambda p: p, "recipe.yaml", id="recipe-missing"),
        pytest.param(lambda p: (p.mkdir(), p)[1], "recipe.yaml", id="recipe-is-a-directory"),
        pytest.param(lambda p: (p.write_bytes(b"stages:\n  d: {kind: \xff}\n"), p)[1], "recipe.yaml", id="not-utf8"),
    ],
)
def test_unreadable_recipe_file_is_refused(make, culprit: str, tmp_path: Path, capsys) -> None:
    path = make(tmp_path / "recipe.yaml")
    assert_refused(["run", str(path), "--run-dir", str(tmp_path / "run")], culprit, capsys)
    assert not (tmp_path / "run").exists()


def test_dry_run_does_not_create_the_run_directory(tmp_path: Path, capsys) -> None:
    path = write_recipe(tmp_path, {"name": "d", "stages": {"d": dus()}})
    assert main(["run", str(path), "--dry-run", "--run-dir", str(tmp_path / "run")]) == 0
    assert "to run" in capsys.readouterr().out
    assert not (tmp_path / "run").exists()


def test_a_run_directory_in_use_is_refused_naming_the_holder(tmp_path: Path, capsys) -> None:
    path = write_recipe(tmp_path, {"name": "d", "stages": {"d": dus()}})
    run_dir = tmp_path / "run"
    with hold_run_dir(run_dir):
        line = assert_refused(["run", str(path), "--run-dir", str(run_dir)], ["in use", f"pid {os.getpid()}"], capsys)
    assert "artifacts" not in os.listdir(run_dir), line
    assert main(["run", str(path), "--run-dir", str(run_dir), "--no-report"]) == 0  # free again afterwards


def test_a_killed_run_leaves_no_lock_and_is_marked_killed(tmp_path: Path, capsys) -> None:
    """kill -9 of the process holding the lock frees it; the store's `running` row becomes `killed`."""
    run_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from dusk.run_lock import hold_run_dir;\n"
         "from dusk.store import open_store\n"
         f"with hold_run_dir(Path({str(run_dir)!r})):\n"
         f"    s = open_store(Path({str(run_dir)!r})); s.start_run('d', '', '', '', [], {{}}, '', '0'); s.close()\n"
         "    print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    assert main(["results", "--run-dir", str(run_dir)]) == 0
    assert "running" in capsys.readouterr().out  # alive: shown as running
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert main(["results", "--run-dir", str(run_dir)]) == 0
    assert "killed" in capsys.readouterr().out
    path = write_recipe(tmp_path, {"name": "d", "stages": {"d": dus()}})
    assert main(["run", str(path), "--run-dir", str(run_dir), "--no-report"]) == 0  # not blocked by the dead holder
    store = open_store(run_dir)
    try:
        assert [row["status"] for row in store.runs()] == ["killed", "complete"]
    finally:
        store.close()


def test_a_refused_empty_stage_name_keeps_earlier_results_after_a_real_run(tmp_path: Path, capsys) -> None:
    """The defect: stage '' had the artifacts folder itself as its output, and the runner deleted it."""
    run_dir = tmp_path / "run"
    good = write_recipe(tmp_path, {"name": "d", "stages": {"d": dus()}}, "good.yaml")
    assert main(["run", str(good), "--run-dir", str(run_dir), "--no-report"]) == 0
    before = snapshot(run_dir / "artifacts")
    bad = write_recipe(tmp_path, {"name": "d", "stages": {"": dus()}}, "bad.yaml")
    assert_refused(["run", str(bad), "--run-dir", str(run_dir)], "stage name ''", capsys)
    assert snapshot(run_dir / "artifacts") == before
    assert (run_dir / "artifacts" / "d" / "config.json").is_file()


def test_recipe_without_name_gets_a_plain_name_from_its_file(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, {"stages": {"d": dus()}}, "my recipe (v2).yaml")
    assert load_recipe(path).name == "my_recipe__v2_"


def test_ctrl_c_prints_one_line_and_exits_130(tmp_path: Path) -> None:
    # a terminal delivers Ctrl-C to a process whose SIGINT is at its default; a test run started in the background
    # (`make test &`) inherits SIGINT ignored, and so would the child without this
    proc = subprocess.Popen(
        [sys.executable, "-m", "dusk", "eval", "tiny-llama", "--tasks", "hellaswag", "--limit", "2000"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, cwd=tmp_path,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    seen = b""
    while b"scoring blocks" not in seen:  # the evaluation is under way (its progress bar has started)
        chunk = proc.stderr.read1(4096)
        assert chunk, f"dusk ended before scoring: {seen.decode()}"
        seen += chunk
    proc.send_signal(signal.SIGINT)
    stderr = (seen + proc.stderr.read()).decode()
    proc.wait(timeout=120)
    # a shell reports 130 both for exit(130) and for death by SIGINT (-2 here); dusk exits 130 itself
    assert proc.returncode in (130, -signal.SIGINT), stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == "dusk: interrupted"


def test_a_closed_output_pipe_ends_quietly(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "dusk", "models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader (`| head`) went away before dusk wrote
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert proc.returncode == 141


def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(tmp_path: Path, monkeypatch, capsys) -> None:
    """ENOSPC while writing an up-scaled model: exit 1, one line, no output and no temporary left."""
    import errno

    import dusk.models.safetensors_io as safetensors_io

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "out"))

    monkeypatch.setattr(safetensors_io, "save_file", full_disk, raising=False)
    monkeypatch.setattr(safetensors_io, "_write_shard", full_disk, raising=False)
    capsys.readouterr()
    code = main(["upscale", "tiny-llama", "--drop", "1", "--out", str(tmp_path / "out")])
    stderr = capsys.readouterr().err
    assert code == 1 and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1 and "No space left on device" in stderr
    assert os.listdir(tmp_path) == []


def test_refusal_checker_rejects_tracebacks() -> None:
    """The suite's own check fails on what it must catch (so a green suite means something)."""
    with pytest.raises(AssertionError):
        check_refusal(1, "Traceback (most recent call last):\nKeyError: 'x'\n", "x")
    with pytest.raises(AssertionError):
        check_refusal(2, "dusk: error: one\ndusk: error: two\n", "one")
    assert run_dusk(["--version"]).returncode == 0
