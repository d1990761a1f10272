"""Peak RSS per process of `dusk sft` in 1 process and N sharded (or DDP) processes, against dusk's memory plan.

Samples the RSS of every process of the run (the launcher's children, each rank) every 50 ms with psutil, and
prints each rank's peak next to `dusk.train.memory_plan`'s estimate for that setting (CPU overhead).

    .venv/bin/python bench/train_memory.py --model smollm2-135m --data alpaca_gpt4 --seq-len 256 --batch-size 2
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from dusk.models.io import resolve_model
from dusk.train.config import SFTConfig
from dusk.train.memory_plan import plan_rows

MIB = 1024**2


def command(args: argparse.Namespace, processes: int, out: Path, extra: list[str]) -> list[str]:
    flags = ["sft", "--model", args.model, "--data", args.data, "--out", str(out), "--max-steps", str(args.steps),
             "--seq-len", str(args.seq_len), "--batch-size", str(args.batch_size), "--eval-size", "0",
             "--no-progress", "--max-examples", "200", *extra]  # fmt: skip
    if processes == 1:
        return [sys.executable, "-m", "dusk", *flags]
    launcher = str(Path(sys.executable).with_name("accelerate"))
    return [launcher, "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29561", "-m", "dusk",
            *flags, "--shard", args.shard]  # fmt: skip


def peak_rss_per_rank(cmd: list[str]) -> list[float]:
    """Run `cmd`; the peak RSS (MiB) of each dusk process (the ranks, or the process itself), largest first."""
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // 2))}
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    parent, peaks = psutil.Process(process.pid), {}
    while process.poll() is None:
        try:
            family = [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for each in family:
            try:
                if "dusk" in " ".join(each.cmdline()) and "launch" not in each.cmdline()[1:3]:
                    peaks[each.pid] = max(peaks.get(each.pid, 0), each.memory_info().rss)
            except psutil.Error:
                continue
        time.sleep(0.05)
    if process.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{process.stderr.read()[-2000:]}")
    return sorted((v / MIB for v in peaks.values()), reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", default="alpaca_gpt4")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--shard", choices=["none", "fsdp"], default="fsdp", help="of the multi-process runs")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more dusk sft flags")
    args = parser.parse_args()
    model_dir = resolve_model(args.model)
    print(f"{'processes':>9} {'setting':<48} {'rank peaks MiB':<22} {'estimate MiB':>12} {'est/meas':>8}")
    with tempfile.TemporaryDirectory() as work:
        for processes in args.processes:
            out = Path(work) / f"out-{processes}"
            peaks = peak_rss_per_rank(command(args, processes, out, args.extra))
            shard = ["--shard", args.shard] if processes > 1 else []
            cfg = SFTConfig.model_validate(
                {
                    "model": str(model_dir),
                    "data": args.data,
                    "out": str(out),
                    "seq_len": args.seq_len,
                    "batch_size": args.batch_size,
                    **_flags(args.extra + shard),
                }  # fmt: skip
            )
            row = plan_rows(cfg, model_dir, processes, None)[0]
            guess = row.estimate.total / MIB
            print(f"{processes:>9} {row.setting.describe():<48} {', '.join(f'{p:.0f}' for p in peaks):<22} "
                  f"{guess:>12.0f} {guess / peaks[0]:>8.2f}")  # fmt: skip


def _flags(extra: list[str]) -> dict:
    """The few sft flags this script understands in --extra, as config fields."""
    fields, i = {}, 0
    while i < len(extra):
        name = extra[i].removeprefix("--").replace("-", "_")
        if name in ("gradient_checkpointing", "lora"):
            fields[name] = True
            i += 1
        else:
            fields[name] = extra[i + 1]
            i += 2
    return fields


if __name__ == "__main__":
    main()
