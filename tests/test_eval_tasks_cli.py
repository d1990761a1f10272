"""`dusk eval` end to end on the tiny model: results.json and samples files, the table, and bad input."""

import json
import shutil
from pathlib import Path

import pytest
from eval_task_fixtures import parse_eval
from pydantic import ValidationError

from dusk.errors import DuskError
from dusk.eval import run as eval_run


def test_eval_writes_results_and_samples(tiny_llama: Path, tmp_path: Path, benchmark_data: Path, capsys):
    out = tmp_path / "eval"
    args = parse_eval([str(tiny_llama), "--tasks", "h6", "--limit", "1", "--max-new-tokens", "6", "--out", str(out)])
    assert args.handler(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["tasks"]["arc_challenge"]["n"] == 1 and results["tasks"]["arc_challenge"]["num_fewshot"] == 25
    assert results["groups"]["mmlu"]["n"] == 57 and len(results["groups"]["mmlu"]["parts"]) == 57
    headlines = [
        results["tasks"]["arc_challenge"]["metrics"]["acc_norm"]["value"],
        results["tasks"]["hellaswag"]["metrics"]["acc_norm"]["value"],
        results["groups"]["mmlu"]["value"],
        results["tasks"]["truthfulqa_mc2"]["metrics"]["mc2"]["value"],
        results["tasks"]["winogrande"]["metrics"]["acc"]["value"],
        results["tasks"]["gsm8k"]["metrics"]["exact_match"]["value"],
    ]
    assert results["groups"]["h6"]["value"] == pytest.approx(sum(headlines) / 6)
    settings = results["settings"]
    assert settings["mode"] == "harness" and settings["limit"] == 1 and settings["seeds"]["fewshot_seed"] == 1234
    assert len(settings["model_dir_sha256"]) == 64 and any("gsm8k/test.jsonl" in f for f in settings["data_files"])
    lines = [json.loads(line) for line in (out / "samples_arc_challenge.jsonl").read_text().splitlines()]
    assert [line["doc_id"] for line in lines] == [0]
    assert lines[0]["prompt"].endswith("\nAnswer:") and len(lines[0]["logprobs"]) == len(lines[0]["continuations"])
    gsm = json.loads((out / "samples_gsm8k.jsonl").read_text().splitlines()[0])
    assert {"generation", "extracted", "gold", "metrics"} <= set(gsm)
    table = capsys.readouterr().out
    assert "h6" in table and "mmlu_anatomy" in table and "stderr" in table


def test_leaderboard_mode_and_tiny_subset(tiny_llama: Path, tmp_path: Path, benchmark_data: Path):
    cfg = eval_run.EvalConfig(
        model=str(tiny_llama),
        tasks=("winogrande", "mmlu"),
        out=tmp_path / "lb",
        mode="leaderboard",
        subset="tiny",
        max_new_tokens=4,
    )
    results = json.loads(eval_run.run(cfg).read_text())
    assert results["tasks"]["winogrande"]["n"] == 100
    assert results["groups"]["mmlu"]["n"] == 100
    subject_means = [t["metrics"]["acc"]["value"] for name, t in results["tasks"].items() if name.startswith("mmlu_")]
    assert results["groups"]["mmlu"]["value"] == pytest.approx(sum(subject_means) / len(subject_means))
    assert "h6" not in results["groups"] and results["settings"]["subset"] == "tiny"


def test_bad_input(tiny_llama: Path, tmp_path: Path, benchmark_data: Path, monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(DuskError, match="unknown task 'arc'; known: .*arc_challenge"):
        eval_run.EvalConfig(model="m", tasks=("arc",), out=tmp_path)
    with pytest.raises(ValidationError, match="must be a positive number of items per task"):
        eval_run.EvalConfig(model="m", tasks=("h6",), out=tmp_path, limit=0)
    with pytest.raises(DuskError, match="unknown subset 'huge'"):
        eval_run.run(eval_run.EvalConfig(model=str(tiny_llama), tasks=("gsm8k",), out=tmp_path / "x", subset="huge"))
    bare = tmp_path / "no-tokenizer"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_llama / name, bare / name)
    with pytest.raises(DuskError, match="no tokenizer files"):
        eval_run.run(eval_run.EvalConfig(model=str(bare), tasks=("gsm8k",), out=tmp_path / "y", limit=1))
    monkeypatch.setenv("DUSK_DATA_DIR", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DuskError, match=r"data file missing for 'gsm8k': looked for .*gsm8k/test.jsonl.*DUSK_DATA_DIR"):
        eval_run.run(eval_run.EvalConfig(model=str(tiny_llama), tasks=("gsm8k",), out=tmp_path / "z", limit=1))
