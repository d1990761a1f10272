"""Shared helpers for the data tests: the real data folder, small files written into tmp dirs."""

import json
import os
from pathlib import Path

import pytest


def real_data_dir() -> Path:
    """$DUSK_DATA_DIR, else ../shared/data; skip the test when neither holds the data."""
    root = Path(os.environ.get("DUSK_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
    if not (root / "train").is_dir():
        pytest.skip(f"training data not found at {root}; set DUSK_DATA_DIR")
    return root


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
