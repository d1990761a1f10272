"""`dusk contamination` end to end on the real SmolLM2 and benchmark files (one item per task, four samples)."""

import argparse
import json
from pathlib import Path

import pytest
import torch
from eval_task_fixtures import real_data_dir

from dusk.contamination import commands as contamination_commands
from dusk.models.io import resolve_model

pytestmark = pytest.mark.slow


def test_cli_on_smollm2_for_two_tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("DUSK_DATA_DIR", str(real_data_dir()))
    model = str(resolve_model("smollm2-135m"))
    parser = argparse.ArgumentParser(prog="dusk")
    contamination_commands.register(parser.add_subparsers(dest="command", required=True))
    argv = ["contamination", model, "--reference", model, "--tasks", "winogrande,truthfulqa_mc2", "--n", "1"]
    args = parser.parse_args([*argv, "--samples", "4", "--out", str(tmp_path / "out")])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert args.handler(args) == 0
    finally:
        torch.set_num_threads(threads)
    assert "| Model | Winogrande | TruthfulQA |" in capsys.readouterr().out
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {task["items"] for task in document["tasks"].values()} == {1}
    assert any(path.endswith("winogrande/dev.jsonl") for path in document["settings"]["data_files"])
    lines = (tmp_path / "out" / "samples_truthfulqa_mc2.jsonl").read_text().splitlines()
    for line in map(json.loads, lines):
        assert line["score"] in (0.0, 0.25, 0.5, 0.75, 1.0) and line["continuation_tokens"] >= 1
        assert line["min_k"] == line["min_k_reference"]  # the model is its own reference
