"""Shared fixtures of the training tests: small slices of the real training data as JSONL, and a config helper."""

import json
import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("DUSK_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")


def _train_file(relative: str) -> Path:
    path = SHARED_DATA / "train" / relative
    if not path.is_file():
        pytest.skip(f"real training data not found: {path} (set DUSK_DATA_DIR)")
    return path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(scope="session")
def alpaca_pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 real Alpaca-GPT4 instruction records, normalized to {prompt, response} (not yet templated)."""
    rows = json.loads(_train_file("alpaca_gpt4/alpaca_en_demo.json").read_text())[:120]
    records = [
        {"prompt": r["instruction"] + (f"\n\n{r['input']}" if r["input"] else ""), "response": r["output"]}
        for r in rows
    ]
    return write_jsonl(tmp_path_factory.mktemp("data") / "alpaca.jsonl", records)


@pytest.fixture(scope="session")
def preference_pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 real UltraFeedback preference pairs {prompt, chosen, rejected}."""
    lines = _train_file("ultrafeedback/train_clean.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines[:60]]
    records = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in records if r["chosen"] and r["rejected"]]
    return write_jsonl(tmp_path_factory.mktemp("data") / "prefs.jsonl", records[:48])


@pytest.fixture(scope="session")
def shakespeare_text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 40,000 characters of tinyshakespeare as one text record."""
    text = _train_file("tinyshakespeare/input.txt").read_text()[:40_000]
    return write_jsonl(tmp_path_factory.mktemp("data") / "shakespeare.jsonl", [{"text": text}])


def tiny_config(config_cls, model: Path, data: Path, out: Path, **overrides):
    """A config for a seconds-long run on the tiny model (no progress bar, no held-out set unless asked)."""
    values = dict(
        model=str(model),
        data=str(data),
        out=out,
        max_steps=6,
        seq_len=64,
        batch_size=4,
        lr=3e-3,
        eval_size=0,
        progress=False,
    )
    if "ref_cache" in config_cls.model_fields:
        values["ref_cache"] = out.parent / "ref-cache"
    values.update(overrides)
    return config_cls(**values)


def log_lines(path: Path, kind: str | None = None) -> list[dict]:
    """The JSONL step log (train lines, or only `kind` lines such as 'eval')."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [line for line in lines if line.get("kind") == kind]


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny models run fastest on one thread (and do not fight other processes for the cores)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
