"""Datasets by Hugging Face id (`org/name[:config][@split]`): read from a hub cache built on disk, offline."""

from pathlib import Path

import pytest
from bad_input_helpers import assert_refused

from dusk.cli import main
from dusk.data.registry import HubDataset, hub_dataset, load_records

ROWS = '{"instruction": "Say hi", "output": "hi"}\n{"instruction": "Add 1 and 1", "output": "2"}\n'


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A hub cache holding dataset org/mini (a train split of two instruction records), offline."""
    storage = tmp_path / "hub" / "datasets--org--mini"
    (storage / "snapshots" / "abc" / "data").mkdir(parents=True)
    (storage / "snapshots" / "abc" / "data" / "train.jsonl").write_text(ROWS)
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text("abc")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "hub"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("org/mini", HubDataset("org/mini", None, "train")),
        ("org/mini:en@test", HubDataset("org/mini", "en", "test")),
        ("org/mini@train[:10]", HubDataset("org/mini", None, "train[:10]")),
        ("alpaca_gpt4", None),
        ("data/train.jsonl", None),
    ],
)
def test_hub_dataset_ids(text: str, expected: HubDataset | None) -> None:
    assert hub_dataset(text) == expected


def test_records_from_the_offline_hub_cache(hub: Path) -> None:
    records = load_records("org/mini", kind="instruction")
    assert len(records) == 2 and "Say hi" in str(records[0]) and "Add 1 and 1" in str(records[1])


def test_missing_split_is_refused(hub: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert_refused(["data", "show", "org/mini@test"], ["org/mini@test", "'test'", "org/mini@SPLIT"], capsys,
                   watch=[tmp_path / "hub"])  # fmt: skip


def test_dataset_not_cached_while_offline(hub: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert_refused(
        ["data", "show", "org/absent"], ["org/absent", "HF_HUB_OFFLINE", "--repo-type dataset"], capsys, watch=[hub]
    )


def test_data_show_reads_a_hub_dataset(hub: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "show", "org/mini", "-n", "1"]) == 0
    assert "Say hi" in capsys.readouterr().out
