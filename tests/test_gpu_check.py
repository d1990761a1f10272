"""bench/gpu_check.py runs on the CPU with the tiny shape (so the prepared GPU script cannot rot): every workload
reports its speeds, the engine's token efficiency, and fast-vs-plain agreement (fp32 only here: bf16 runs the same
code, slowly on a CPU)."""

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_eval_section_runs_on_cpu(tmp_path: Path, one_thread: None) -> None:
    out = tmp_path / "gpu_check.json"
    argv = ["--section", "eval", "--device", "cpu", "--shapes", "tiny", "--dtypes", "float32", "--json", str(out)]
    report = _gpu_check().main(argv)
    assert json.loads(out.read_text())["eval"] == report["eval"]
    rows = report["eval"]
    assert [(r["shape"], r["dtype"], r["workload"]) for r in rows] == [
        ("tiny", "float32", w) for w in ("mmlu-like", "arc-like", "gsm8k-like")
    ]
    for row in rows:
        assert row["fast_tok_s"] > 0 and row["plain_tok_s"] > 0 and row["batched_tok_s"] > 0
        assert 0 < row["token_efficiency"] <= 1
    mmlu = [r for r in rows if r["workload"] == "mmlu-like"]
    assert all(r["token_efficiency"] > 0.5 for r in mmlu)  # a subject's shared prefix is forwarded once
    fp32 = {r["workload"]: r for r in rows if r["dtype"] == "float32"}
    assert fp32["mmlu-like"]["max_ll_diff"] < 1e-4 and fp32["arc-like"]["max_ll_diff"] < 1e-4
    assert fp32["gsm8k-like"]["same_generations"] == 1.0


@pytest.fixture
def one_thread():
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
