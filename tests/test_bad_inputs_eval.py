"""Bad input to `dusk eval`, `dusk contamination` and `dusk generate`: each mistake a new user could make is refused
in one line naming the culprit, with nothing written; and the regressions of issue 13 (leaderboard GSM8K, the output
checked before the work, results kept when the end write fails, stale samples files of an earlier run removed)."""

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from bad_input_helpers import assert_refused, check_refusal, run_dusk
from eval_task_fixtures import real_data_dir

from dusk.cli import main
from dusk.contamination import run as contamination
from dusk.eval import run as eval_run


@pytest.fixture
def places(tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A tiny model and the wrong things a user might point at instead, all under tmp_path (the cwd)."""
    monkeypatch.setenv("DUSK_DATA_DIR", str(real_data_dir()))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a model\n")
    (tmp_path / "empty-dir").mkdir()
    (tmp_path / "broken-link").symlink_to(tmp_path / "nowhere")
    bad_config = tmp_path / "bad-config"
    shutil.copytree(tiny_llama, bad_config)
    (bad_config / "config.json").write_text("{not json")
    no_weights = tmp_path / "no-weights"
    shutil.copytree(tiny_llama, no_weights, ignore=shutil.ignore_patterns("*.safetensors"))
    return {
        "model": str(tiny_llama),
        "file": str(tmp_path / "notes.txt"),
        "dir": str(tmp_path / "empty-dir"),
        "bad_config": str(bad_config),
        "no_weights": str(no_weights),
        "out": str(tmp_path / "out"),
        "link": str(tmp_path / "broken-link"),
    }


EVAL = "eval {model} --tasks gsm8k --limit 1 --out {out}".split()
CONTAMINATION = "contamination {model} --reference {model} --tasks gsm8k --n 1 --out {out}".split()


def _eval(*extra: str) -> list[str]:
    """A good `dusk eval` line with `extra` flags after it (a later flag wins)."""
    return [*EVAL, *extra]


def _contamination(*extra: str) -> list[str]:
    """A good `dusk contamination` line with `extra` flags after it."""
    return [*CONTAMINATION, *extra]


BAD_INPUTS = [
    pytest.param(_eval("--tasks", "arc"), ["'arc'", "arc_challenge"], id="eval-unknown-task"),
    pytest.param(_eval("--tasks", ","), ["--tasks", "empty"], id="eval-empty-tasks"),
    pytest.param(_eval("--limit", "0"), ["--limit", "0"], id="eval-limit-zero"),
    pytest.param(_eval("--limit", "-5"), ["--limit", "-5"], id="eval-limit-negative"),
    pytest.param(
        ["eval", "{model}", "--subset", "huge", "--out", "{out}"], ["'huge'", "tiny"], id="eval-unknown-subset"
    ),
    pytest.param(
        ["eval", "{model}", "--tasks", "arc_easy", "--subset", "tiny", "--out", "{out}"],
        ["'arc_easy'", "subset 'tiny'"],
        id="eval-subset-without-task",
    ),
    pytest.param(_eval("--mode", "lb"), ["--mode", "'lb'"], id="eval-bad-mode"),
    pytest.param(_eval("--dtype", "fp8"), ["--dtype", "'fp8'"], id="eval-bad-dtype"),
    pytest.param(_eval("--batch-size", "0"), ["--batch-size", "0"], id="eval-batch-size-zero"),
    pytest.param(_eval("--max-new-tokens", "-1"), ["--max-new-tokens", "-1"], id="eval-budget-negative"),
    pytest.param(["eval", "{file}", "--out", "{out}"], ["notes.txt", "model directory"], id="eval-model-is-a-file"),
    pytest.param(["eval", "{dir}", "--out", "{out}"], ["empty-dir", "config.json"], id="eval-dir-not-a-model"),
    pytest.param(["eval", "tiny-lama", "--out", "{out}"], ["'tiny-lama'", "tiny-llama"], id="eval-unknown-model"),
    pytest.param(["eval", "{bad_config}", "--out", "{out}"], ["bad-config/config.json"], id="eval-config-not-json"),
    pytest.param(["eval", "{no_weights}", "--out", "{out}"], ["no-weights", ".safetensors"], id="eval-no-weights"),
    pytest.param(_eval("--out", "{file}"), ["--out", "notes.txt", "not a directory"], id="eval-out-is-a-file"),
    pytest.param(_eval("--out", "{file}/results"), ["notes.txt", "not a directory"], id="eval-out-under-a-file"),
    pytest.param(_eval("--out", ""), ["--out", "empty"], id="eval-out-empty"),
    pytest.param(_eval("--out", "{link}"), ["broken-link", "nowhere"], id="eval-out-broken-link"),
    pytest.param(_contamination("--n", "0"), ["--n 0"], id="contamination-n-zero"),
    pytest.param(_contamination("--samples", "0"), ["--samples 0"], id="contamination-samples-zero"),
    pytest.param(_contamination("--top-k", "-1"), ["--top-k -1"], id="contamination-top-k-negative"),
    pytest.param(_contamination("--prefix-ratio", "1.5"), ["--prefix-ratio 1.5"], id="contamination-prefix-ratio"),
    pytest.param(_contamination("--temperature", "0"), ["--temperature 0"], id="contamination-temperature-zero"),
    pytest.param(_contamination("--threshold", "2"), ["--threshold 2"], id="contamination-threshold-above-one"),
    pytest.param(_contamination("--min-words", "1"), ["--min-words 1"], id="contamination-min-words"),
    pytest.param(_eval("--config", "{file}"), ["--config", "notes.txt"], id="eval-config-not-a-mapping"),
    pytest.param(_contamination("--tasks", ""), ["--tasks", "no tasks"], id="contamination-empty-tasks"),
    pytest.param(
        _contamination("--tasks", "mmlu_anatomy"), ["'mmlu_anatomy'", "h6"], id="contamination-eval-only-task"
    ),
    pytest.param(
        _contamination("--reference", "{dir}"), ["empty-dir", "config.json"], id="contamination-ref-not-model"
    ),
    pytest.param(_contamination("--out", "{file}"), ["--out", "notes.txt"], id="contamination-out-is-a-file"),
    pytest.param(["generate", "{model}", "hi", "--max-new-tokens", "0"], ["--max-new-tokens", "0"], id="generate-zero"),
    pytest.param(
        ["generate", "{model}", "hi", "--max-new-tokens", "-3"], ["--max-new-tokens", "-3"], id="generate-neg"
    ),
    pytest.param(["generate", "{model}", ""], ["PROMPT", "no tokens"], id="generate-empty-prompt"),
    pytest.param(["generate", "{bad_config}", "hi"], ["bad-config/config.json"], id="generate-config-not-json"),
]


@pytest.mark.parametrize(("argv", "culprits"), BAD_INPUTS)
def test_bad_input_is_refused(
    argv: list[str], culprits: list[str], places: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert_refused([arg.format(**places) for arg in argv], culprits, capsys, watch=[tmp_path])


def test_missing_data_dir_is_refused_before_the_model_loads(
    places: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("DUSK_DATA_DIR", str(tmp_path / "no-data"))
    monkeypatch.setattr(eval_run, "load_engine", _must_not_run)
    assert_refused([arg.format(**places) for arg in _eval()], ["DUSK_DATA_DIR", "no-data"], capsys, watch=[tmp_path])


def _must_not_run(*_args, **_kwargs):
    raise AssertionError("the model was loaded before the input was checked")


@pytest.mark.parametrize("argv", [_eval(), _contamination()], ids=["eval", "contamination"])
def test_unwritable_out_is_refused_before_the_work(
    argv: list[str],
    places: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """A read-only parent of --out fails at once (tests run as root too, so the permission check is simulated)."""
    real_access = os.access
    read_only = tmp_path.resolve()
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != read_only and real_access(path, mode))
    monkeypatch.setattr(eval_run, "load_engine", _must_not_run)
    monkeypatch.setattr(contamination, "load_pair", _must_not_run)
    assert_refused([arg.format(**places) for arg in argv], ["out", "not writable"], capsys, watch=[tmp_path])


def _block_out_after(module, name: str, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once `module.name` has run (the model is loaded), put a file where the output directory was to go."""
    original: Callable = getattr(module, name)

    def blocked(*args, **kwargs):
        result = original(*args, **kwargs)
        out.write_text("in the way\n")
        return result

    monkeypatch.setattr(module, name, blocked)


@pytest.mark.parametrize(
    ("argv", "module", "loader", "samples"),
    [
        (_eval("--max-new-tokens", "4"), eval_run, "load_engine", "samples_gsm8k.jsonl"),
        (_contamination("--samples", "2"), contamination, "load_pair", "samples_gsm8k.jsonl"),
    ],
    ids=["eval", "contamination"],
)
def test_results_are_kept_when_the_output_cannot_be_written(
    argv: list[str],
    module,
    loader: str,
    samples: str,
    places: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    _block_out_after(module, loader, Path(places["out"]), monkeypatch)
    capsys.readouterr()
    code = main([arg.format(**places) for arg in argv])
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr and code == 1, stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("dusk:")]  # the rest is progress bars
    [rescue] = list(system_tmp.iterdir())
    assert str(rescue) in line and places["out"] in line
    assert json.loads((rescue / "results.json").read_text())["tasks"]["gsm8k"]
    assert (rescue / samples).read_text().count("\n") == 1


def test_leaderboard_mode_scores_gsm8k(places: dict[str, str], capsys: pytest.CaptureFixture) -> None:
    """The README's example: leaderboard GSM8K reports exact_match only (it has no flexible extraction)."""
    argv = ["eval", places["model"], "--tasks", "arc_challenge,gsm8k", "--limit", "2", "--mode", "leaderboard"]
    assert main([*argv, "--max-new-tokens", "4", "--out", places["out"]]) == 0
    results = json.loads((Path(places["out"]) / "results.json").read_text())
    assert list(results["tasks"]["gsm8k"]["metrics"]) == ["exact_match"]
    assert results["tasks"]["gsm8k"]["n"] == 2 and results["tasks"]["arc_challenge"]["n"] == 2
    samples = [json.loads(line) for line in (Path(places["out"]) / "samples_gsm8k.jsonl").read_text().splitlines()]
    mean = sum(sample["metrics"]["exact_match"] for sample in samples) / len(samples)
    assert results["tasks"]["gsm8k"]["metrics"]["exact_match"]["value"] == pytest.approx(mean)
    assert "gsm8k" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "old_task"),
    [(_eval("--max-new-tokens", "4"), "arc_challenge"), (_contamination("--samples", "2"), "winogrande")],
    ids=["eval", "contamination"],
)
def test_a_rerun_leaves_only_its_own_samples(argv: list[str], old_task: str, places: dict[str, str]) -> None:
    """Over an earlier run's directory, the earlier run's samples files of other tasks go; the user's files stay."""
    out = Path(places["out"])
    out.mkdir()
    (out / f"samples_{old_task}.jsonl").write_text('{"doc_id": 0}\n')
    kept = {"notes.md": "my notes\n", "samples_mine.jsonl": "{}\n"}  # not a name dusk writes: never deleted
    for name, text in kept.items():
        (out / name).write_text(text)
    assert main([arg.format(**places) for arg in argv]) == 0
    assert not (out / f"samples_{old_task}.jsonl").exists()
    assert (out / "samples_gsm8k.jsonl").is_file() and (out / "results.json").is_file()
    assert {name: (out / name).read_text() for name in kept} == kept
    assert not [path.name for path in [*out.iterdir(), *out.parent.iterdir()] if ".tmp-" in path.name]


def test_generate_refusal_in_a_real_process(places: dict[str, str]) -> None:
    """`python -m dusk generate ... --max-new-tokens 0`: one line, exit 2 (it was a transformers traceback)."""
    done = run_dusk(["generate", places["model"], "hello", "--max-new-tokens", "0"])
    check_refusal(done.returncode, done.stderr, "--max-new-tokens")
