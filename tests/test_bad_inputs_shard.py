"""Bad input around --shard: refused in one line naming the culprit before any work, nothing written; --shard fsdp
in a single process is not an error: it warns and trains unsharded (the same steps)."""

import json
import logging
from pathlib import Path

import pytest

from dusk.train import sft
from dusk.train.config import SFTConfig
from tests.bad_input_helpers import assert_refused
from tests.train_fixtures import log_lines, single_thread, tiny_config, write_jsonl  # noqa: F401

QUICK = ["--max-steps", "2", "--seq-len", "64", "--batch-size", "2", "--eval-size", "0", "--no-progress"]


def _checkpoint(path: Path, processes: int, sharded: bool) -> None:
    """A checkpoint's state.json as a run with `processes` processes writes it (only the layout is read first)."""
    path.mkdir(parents=True)
    state = {"step": 2, "tokens": 64, "num_processes": processes, "sharded": sharded, "python_rng": [], "config": {}}
    (path / "state.json").write_text(json.dumps(state))


@pytest.fixture
def place(tmp_path: Path, tiny_llama: Path) -> dict[str, str]:
    write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "Say hi.", "response": "Hi."}] * 4)
    _checkpoint(tmp_path / "sharded", processes=2, sharded=True)
    _checkpoint(tmp_path / "two_processes", processes=2, sharded=False)
    _checkpoint(tmp_path / "out.run" / "checkpoints" / "step-00000002", processes=2, sharded=True)
    return {"model": str(tiny_llama), "tmp": str(tmp_path)}


def _sft(*extra: str) -> list[str]:
    return ["sft", "--model", "{model}", "--data", "{tmp}/pairs.jsonl", "--out", "{tmp}/out", *QUICK, *extra]


ROWS = [
    pytest.param(_sft("--shard", "zero3"), ["--shard", "zero3", "'none', 'fsdp'"], id="shard-unknown"),
    pytest.param(
        _sft("--resume", "{tmp}/sharded"),
        ["sharded checkpoint", "this run is not sharded", "--shard fsdp under 2 processes"],
        id="resume-sharded-unsharded",
    ),
    pytest.param(
        _sft("--resume", "latest"), ["step-00000002", "sharded checkpoint", "--shard fsdp"], id="resume-latest-sharded"
    ),
    pytest.param(
        _sft("--resume", "{tmp}/sharded", "--shard", "fsdp"),
        ["sharded checkpoint", "1 process(es)", "under 2 processes"],
        id="resume-sharded-in-one-process",
    ),
    pytest.param(
        _sft("--resume", "{tmp}/two_processes"),
        ["2 process(es), this run has 1", "data position"],
        id="resume-other-process-count",
    ),
]


@pytest.mark.parametrize(("argv", "culprits"), ROWS)
def test_bad_shard_input_is_refused(
    argv: list[str], culprits: list[str], place: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = [arg.format(**place) for arg in argv]
    assert_refused(argv, culprits, capsys, watch=[tmp_path])


def test_shard_fsdp_in_one_process_warns_and_trains_unsharded(
    tiny_llama: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "Say hi.", "response": "Hi there."}] * 8)
    plain = tiny_config(SFTConfig, tiny_llama, data, tmp_path / "plain", max_steps=2)
    sharded = tiny_config(SFTConfig, tiny_llama, data, tmp_path / "alone", max_steps=2, shard="fsdp")
    sft.run(plain)
    with caplog.at_level(logging.WARNING, logger="dusk.train.sharding"):
        sft.run(sharded)
    assert any("single process" in r.message and "unsharded" in r.message for r in caplog.records)
    losses = [line["loss"] for line in log_lines(plain.work_dir / "log.jsonl")]
    assert [line["loss"] for line in log_lines(sharded.work_dir / "log.jsonl")] == losses
