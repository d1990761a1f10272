"""--shard fsdp: 2 sharded processes (FSDP2 over gloo) take the same steps as 1 unsharded process with the same
global batch (SFT killed with kill -9 after a checkpoint and resumed; DPO with LoRA and gradient checkpointing),
and write sharded checkpoints atomically."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file

from dusk.train import checkpoint, dpo, sft
from dusk.train.config import DPOConfig, SFTConfig
from tests.train_fixtures import alpaca_pairs, log_lines, preference_pairs, single_thread, tiny_config  # noqa: F401


def _command(args: list[str], port: int) -> list[str]:
    launcher = Path(sys.executable).with_name("accelerate")
    return [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port), "-m", "dusk",
            *args, "--shard", "fsdp"]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _launch_two(args: list[str], port: int = 29541) -> None:
    done = subprocess.run(_command(args, port), env=_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]


def _max_difference(a: Path, b: Path) -> float:
    left, right = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert sorted(left) == sorted(right)
    return max(float((left[k] - right[k]).abs().max()) for k in left)


def _sft_args(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["sft", "--model", str(model), "--data", str(data), "--out", str(out), "--seq-len", "64",
            "--batch-size", "2", "--grad-accum", "2", "--lr", "3e-3", "--eval-size", "0", "--no-progress",
            *extra]  # fmt: skip


@pytest.mark.slow
def test_sharded_lora_dpo_with_checkpointing_matches_one_process(
    tiny_llama: Path,
    preference_pairs: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    options = dict(max_steps=2, max_examples=8, lr=5e-3, lora=True, lora_r=4, gradient_checkpointing=True)
    one = tiny_config(DPOConfig, tiny_llama, preference_pairs, tmp_path / "one", **options)
    dpo.run(one)
    _launch_two(["dpo", "--model", str(tiny_llama), "--data", str(preference_pairs), "--out", str(tmp_path / "two"),
                 "--max-steps", "2", "--max-examples", "8", "--seq-len", "64", "--batch-size", "2", "--lr", "5e-3",
                 "--lora", "--lora-r", "4", "--gradient-checkpointing", "--eval-size", "0", "--no-progress",
                 "--ref-cache", str(tmp_path / "ref-cache")])  # fmt: skip
    expected = [line["loss"] for line in log_lines(one.work_dir / "log.jsonl")]
    assert [line["loss"] for line in log_lines(tmp_path / "two.run" / "log.jsonl")] == pytest.approx(expected, rel=1e-5)
    assert _max_difference(one.out, tmp_path / "two") < 1e-5
    adapter = load_file(tmp_path / "two" / "adapter" / "adapter_model.safetensors")
    reference = load_file(one.out / "adapter" / "adapter_model.safetensors")
    assert sorted(adapter) == sorted(reference)
    assert max(float((adapter[k] - reference[k]).abs().max()) for k in adapter) < 1e-5


def _wait_for(path: Path, process: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, f"the run ended before {path} was written"
        assert time.monotonic() < deadline, f"no {path} after {seconds}s"
        time.sleep(0.02)


def _kill_tree(process: subprocess.Popen) -> None:
    """kill -9 a launcher and all its descendants (torch's launcher starts the ranks in sessions of their own)."""
    parent = psutil.Process(process.pid)
    for each in [*parent.children(recursive=True), parent]:
        try:
            each.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    process.wait()


@pytest.mark.slow
def test_sharded_run_killed_after_a_checkpoint_resumes_with_the_losses_of_one_unsharded_process(
    tiny_llama: Path,
    alpaca_pairs: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    one = tiny_config(SFTConfig, tiny_llama, alpaca_pairs, tmp_path / "one", max_steps=12, batch_size=4, grad_accum=2)
    sft.run(one)
    args = _sft_args(tiny_llama, alpaca_pairs, tmp_path / "two", "--max-steps", "12", "--save-every", "2")
    process = subprocess.Popen(_command(args, 29543), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(tmp_path / "two.run" / "checkpoints" / "step-00000002" / "state.json", process, 200)
    finally:
        _kill_tree(process)  # the launcher and every rank, mid-run
    assert not (tmp_path / "two").exists()
    killed_at = checkpoint.list_checkpoints(tmp_path / "two.run")[-1]
    assert checkpoint.read_state(killed_at)["step"] < 12
    _launch_two([*args, "--resume"], port=29544)
    # 2 sharded processes (killed, resumed) took the steps of 1 unsharded process with the same global batch
    one_log, resumed = log_lines(one.work_dir / "log.jsonl"), log_lines(tmp_path / "two.run" / "log.jsonl")
    assert [line["step"] for line in resumed] == list(range(1, 13))
    assert [line["tokens"] for line in resumed] == [line["tokens"] for line in one_log]
    assert [line["loss"] for line in resumed] == pytest.approx([line["loss"] for line in one_log], rel=1e-5)
    assert _max_difference(one.out, tmp_path / "two") < 1e-5
    assert _max_difference(tiny_llama, tmp_path / "two") > 1e-3  # it trained
    # the checkpoints are sharded (DCP shards, one RNG file per rank) and listed only once complete
    found = checkpoint.list_checkpoints(tmp_path / "two.run")
    assert [p.name for p in found] == ["step-00000010", "step-00000012"]  # --keep-checkpoints 2
    assert {p.name for p in found[-1].iterdir()} >= {"model-optimizer", "rng-0.safetensors", "rng-1.safetensors"}
    assert len(list((found[-1] / "model-optimizer").glob("*.distcp"))) == 2
    assert checkpoint.read_state(found[-1])["sharded"] is True


def test_a_partial_sharded_save_is_not_a_checkpoint(tmp_path: Path) -> None:
    root = checkpoint.checkpoints_root(tmp_path)
    (root / ".step-00000004.partial" / "model-optimizer").mkdir(parents=True)
    (root / ".step-00000004.partial" / "state.json").write_text("{}")
    (root / "step-00000002").mkdir()
    (root / "step-00000002" / "state.json").write_text("{}")
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path)] == ["step-00000002"]


def test_resumed_rng_states_are_restored() -> None:
    import random

    torch.manual_seed(3)
    random.seed(3)
    random.gauss(0, 1)  # leaves the second gaussian of the pair cached: part of the state
    saved = checkpoint._rng_tensors()
    expected = (torch.rand(3), random.random(), random.gauss(0, 1))
    checkpoint._restore_rng(saved)
    assert torch.equal(torch.rand(3), expected[0])
    assert (random.random(), random.gauss(0, 1)) == expected[1:]
