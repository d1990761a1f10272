"""Item-by-item parity with lm-evaluation-harness 0.4.13 on the same local data: same prompts (few-shot draws
included), per-choice log-likelihoods within 1e-3, same predictions (GSM8K: same generated text)."""

import json
from pathlib import Path

import pytest
from eval_parity_helpers import compare, run_lm_eval
from eval_task_fixtures import real_data_dir

from dusk.eval import harness
from dusk.eval import run as eval_run
from dusk.models.io import load_model, load_tokenizer
from dusk.models.tiny import build_tiny_model

TASKS = ["arc_challenge", "hellaswag", "mmlu_anatomy", "mmlu_college_physics", "truthfulqa_mc2", "winogrande", "gsm8k"]


@pytest.fixture(scope="module")
def long_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama with room for 25-shot ARC prompts (its toy tokenizer spends about a token per character)."""
    model_dir = build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-long", "llama", num_layers=2, seed=0)
    config = json.loads((model_dir / "config.json").read_text())
    config["max_position_embeddings"] = 16384
    (model_dir / "config.json").write_text(json.dumps(config))
    return model_dir


def _parity(model_dir: Path, tmp_path: Path, tasks: list[str], limit: int, gen_limit: int, max_gen: int) -> None:
    model, tokenizer = load_model(model_dir), load_tokenizer(model_dir)
    ll_tasks = [t for t in tasks if t != "gsm8k"]
    samples = run_lm_eval(model, tokenizer, ll_tasks, limit, tmp_path / "yaml", max_gen, batch=8)
    samples |= run_lm_eval(model, tokenizer, ["gsm8k"], gen_limit, tmp_path / "yaml-gen", max_gen, batch=1)
    engine = eval_run.load_engine(model_dir, "float32", batch_size=8)
    runs = harness.evaluate(engine, ll_tasks, "harness", harness.Selection(limit=limit))
    runs += harness.evaluate(engine, ["gsm8k"], "harness", harness.Selection(limit=gen_limit), max_gen)
    assert sum(len(run.items) for run in runs) == limit * len(ll_tasks) + gen_limit
    problems = compare(runs, samples)
    assert not problems, "\n".join(problems[:20])


def test_parity_tiny_model(long_tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DUSK_DATA_DIR", str(real_data_dir()))
    _parity(long_tiny, tmp_path, TASKS, limit=3, gen_limit=2, max_gen=12)


@pytest.mark.slow
def test_parity_smollm2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from dusk.models.io import resolve_model

    monkeypatch.setenv("DUSK_DATA_DIR", str(real_data_dir()))
    _parity(resolve_model("smollm2-135m"), tmp_path, TASKS, limit=2, gen_limit=1, max_gen=32)
