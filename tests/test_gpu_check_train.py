"""bench/gpu_check_train.py on CPU with a tiny Llama: every case (SFT, DPO, with and without gradient
checkpointing) takes real optimizer steps and reports tokens/s, MFU (when a peak is given) and peak memory."""

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_train_runs_on_cpu_with_a_tiny_model(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    command = [sys.executable, str(ROOT / "bench" / "gpu_check_train.py"), "--shape", "tiny", "--device", "cpu",
               "--steps", "2", "--warmup", "1", "--seq-len", "32", "--batch-size", "2", "--peak-tflops", "1",
               "--json", str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    cases = {(r["task"], r["gradient_checkpointing"]) for r in results}
    assert cases == {("sft", False), ("sft", True), ("dpo", False), ("dpo", True)}
    for r in results:
        assert r["tokens_per_s"] > 0 and math.isfinite(r["loss"]) and r["peak_memory_mib"] > 0
        assert 0 < r["mfu"] < 1  # a tiny model on a CPU against a 1 TFLOP/s peak
    assert "tokens/s" in done.stdout and "MFU" in done.stdout
