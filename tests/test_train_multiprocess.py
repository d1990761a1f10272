"""Data parallel: `accelerate launch --multi_gpu --num_processes 2` on CPU (gloo) equals one process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dusk.train import dpo, sft
from dusk.train.config import DPOConfig, SFTConfig
from tests.train_fixtures import alpaca_pairs, log_lines, preference_pairs, single_thread, tiny_config  # noqa: F401


def _launch_two(args: list[str]) -> None:
    launcher = Path(sys.executable).with_name("accelerate")
    command = [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517", "-m", "dusk",
               *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
def test_two_processes_match_one_process_with_the_same_global_batch(
    tiny_llama: Path,
    alpaca_pairs: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    one = tiny_config(SFTConfig, tiny_llama, alpaca_pairs, tmp_path / "one", max_steps=3, batch_size=4, grad_accum=2)
    sft.run(one)
    _launch_two(["sft", "--model", str(tiny_llama), "--data", str(alpaca_pairs), "--out", str(tmp_path / "two"),
                 "--max-steps", "3", "--seq-len", "64", "--batch-size", "2", "--grad-accum", "2", "--lr", "3e-3",
                 "--eval-size", "0", "--no-progress"])  # fmt: skip
    two_log = log_lines(tmp_path / "two.run" / "log.jsonl")
    assert [line["tokens"] for line in two_log] == [line["tokens"] for line in log_lines(one.work_dir / "log.jsonl")]
    expected = [line["loss"] for line in log_lines(one.work_dir / "log.jsonl")]
    assert [line["loss"] for line in two_log] == pytest.approx(expected, rel=1e-5)
    a, b = load_file(one.out / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5
    assert any(not torch.equal(a[k], load_file(tiny_llama / "model.safetensors")[k]) for k in a)


@pytest.mark.slow
def test_two_process_dpo_shares_one_reference_cache_and_matches_one_process(
    tiny_llama: Path,
    preference_pairs: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    one = tiny_config(DPOConfig, tiny_llama, preference_pairs, tmp_path / "one", max_steps=2, max_examples=8, lr=5e-3)
    dpo.run(one)
    _launch_two(["dpo", "--model", str(tiny_llama), "--data", str(preference_pairs), "--out", str(tmp_path / "two"),
                 "--max-steps", "2", "--max-examples", "8", "--seq-len", "64", "--batch-size", "2", "--lr", "5e-3",
                 "--eval-size", "0", "--no-progress", "--ref-cache", str(tmp_path / "cache2")])  # fmt: skip
    assert len(list((tmp_path / "cache2").glob("*.safetensors"))) == 1
    expected = [line["loss"] for line in log_lines(one.work_dir / "log.jsonl")]
    assert [line["loss"] for line in log_lines(tmp_path / "two.run" / "log.jsonl")] == pytest.approx(expected, rel=1e-5)
