"""Data-parallel evaluation (dusk.eval.parallel): the split into whole blocks, and two processes under
`accelerate launch` (gloo on CPU) giving the results of one process, for `dusk eval` and `dusk contamination`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from eval_task_fixtures import real_data_dir

from dusk.cli import main
from dusk.eval.parallel import Processes, assign, blocks, share_out


def test_small_units_stay_whole_and_loads_balance() -> None:
    cut = blocks([50, 30, 20, 10, 10], [5, 3, 2, 1, 1], pieces=2)
    assert [(b.unit, b.start, b.stop) for b in cut] == [(0, 0, 5), (1, 0, 3), (2, 0, 2), (3, 0, 1), (4, 0, 1)]
    shares = assign(cut, 2)
    assert sorted(sum(b.cost for b in share) for share in shares) == [60, 60]


def test_a_unit_bigger_than_a_piece_is_cut_into_contiguous_blocks() -> None:
    cut = blocks([90, 10], [9, 1], pieces=2)  # cap 50: unit 0 in 2 blocks, unit 1 whole
    assert [(b.unit, b.start, b.stop) for b in cut] == [(0, 0, 4), (0, 4, 9), (1, 0, 1)]
    for world in (1, 2, 3):  # the blocks do not depend on the process count; every item lands exactly once
        covered = sorted((b.unit, i) for share in assign(cut, world) for b in share for i in range(b.start, b.stop))
        assert covered == [(0, i) for i in range(9)] + [(1, 0)]


def test_one_process_runs_every_item_in_order() -> None:
    units = [["a", "b"], [], ["c"]]
    calls = []
    placed = share_out(Processes(), units, [2, 1, 1], lambda items: calls.append(items) or [i.upper() for i in items])
    assert placed == [["A", "B"], [], ["C"]]
    assert calls == [["a"], ["b"], ["c"]]  # one call per block; a unit above 1/64 of the tokens is cut


def _launch_two(args: list[str], port: int) -> None:
    launcher = Path(sys.executable).with_name("accelerate")
    command = [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port), "-m", "dusk",
               *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DUSK_DATA_DIR": str(real_data_dir())}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def _samples(out: Path) -> dict[str, list[dict]]:
    return {p.name: [json.loads(line) for line in p.read_text().splitlines()] for p in out.glob("samples_*.jsonl")}


@pytest.mark.slow
def test_two_process_eval_equals_one_process(tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUSK_DATA_DIR", str(real_data_dir()))
    args = ["eval", str(tiny_llama), "--tasks", "arc_challenge,mmlu_anatomy,mmlu_astronomy,gsm8k", "--limit", "3",
            "--max-new-tokens", "8"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    _launch_two([*args, "--out", str(tmp_path / "two")], port=29541)
    one, two = _samples(tmp_path / "one"), _samples(tmp_path / "two")
    assert sorted(one) == sorted(two) and len(one) == 4
    for name, items in one.items():
        assert [s["doc_id"] for s in items] == [s["doc_id"] for s in two[name]]
        for a, b in zip(items, two[name], strict=True):
            assert a.get("prediction") == b.get("prediction") and a.get("generation") == b.get("generation")
            assert b.get("logprobs", []) == pytest.approx(a.get("logprobs", []), abs=1e-5)
    settings = json.loads((tmp_path / "two" / "results.json").read_text())["settings"]
    assert settings["processes"] == 2
    assert settings["engine"]["tokens_minimum"] == json.loads((tmp_path / "one" / "results.json").read_text())[
        "settings"]["engine"]["tokens_minimum"]  # fmt: skip
    assert not list(tmp_path.glob(".two.tmp-*"))  # only the main process wrote


@pytest.mark.slow
def test_two_process_contamination_equals_one_process(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUSK_DATA_DIR", str(real_data_dir()))
    args = ["contamination", str(tiny_llama), "--reference", str(tiny_llama), "--tasks", "arc_challenge,gsm8k",
            "--n", "3", "--samples", "3"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    _launch_two([*args, "--out", str(tmp_path / "two")], port=29542)
    one, two = _samples(tmp_path / "one"), _samples(tmp_path / "two")
    assert sorted(one) == sorted(two) and len(one) == 2
    for name, items in one.items():
        assert [s["doc_id"] for s in items] == [s["doc_id"] for s in two[name]]
        for a, b in zip(items, two[name], strict=True):
            assert a["score"] == b["score"]
            assert b["real_loss"] == pytest.approx(a["real_loss"], abs=1e-5)
            assert b["sample_loss_mean"] == pytest.approx(a["sample_loss_mean"], abs=1e-5)
