"""Bad input to `dusk card`: each is refused with exit code 2 and one line naming the culprit; nothing is written."""

import json
import shutil
from pathlib import Path

import pytest
from bad_input_helpers import assert_refused

from dusk.cli import main


@pytest.fixture(scope="module")
def dus_of_a_copy(tiny_llama_4: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(an up-scaled model, the copy of its parent it was made from)."""
    root = tmp_path_factory.mktemp("cards-bad")
    parent = root / "parent"
    shutil.copytree(tiny_llama_4, parent)
    out = root / "dus"
    assert main(["upscale", str(parent), "--drop", "1", "--out", str(out)]) == 0
    return out, parent


def test_a_parent_that_cannot_be_hashed_is_named_with_the_reason(dus_of_a_copy, capsys) -> None:
    out, parent = dus_of_a_copy
    moved = parent.with_name("parent-moved")
    parent.rename(moved)
    try:
        assert_refused(["card", str(out)], [str(parent), "cannot be hashed", "no such model"], capsys, watch=[out])
    finally:
        moved.rename(parent)


def test_a_parent_without_weights_is_named(dus_of_a_copy, capsys) -> None:
    out, parent = dus_of_a_copy
    shard = parent / "model.safetensors"
    aside = parent.parent / "weights-aside"
    shard.rename(aside)
    try:
        assert_refused(["card", str(out)], [str(parent), "safetensors"], capsys, watch=[out])
    finally:
        aside.rename(shard)


@pytest.mark.parametrize(
    "content, culprits",
    [
        pytest.param("not json", ["results.json", "cannot read"], id="results-not-json"),
        pytest.param(json.dumps({"scores": 1}), ["results.json", "tasks"], id="results-not-an-evaluation"),
    ],
)
def test_results_that_are_not_an_evaluation(dus_of_a_copy, tmp_path: Path, capsys, content, culprits) -> None:
    out, _parent = dus_of_a_copy
    (tmp_path / "results.json").write_text(content)
    assert_refused(["card", str(out), "--results", str(tmp_path / "results.json")], culprits, capsys, watch=[out])


def test_a_directory_dusk_did_not_write(tiny_llama: Path, capsys) -> None:
    assert_refused(["card", str(tiny_llama)], [str(tiny_llama), "not a model dusk wrote"], capsys, watch=[tiny_llama])


def test_no_such_directory(tmp_path: Path, capsys) -> None:
    assert_refused(["card", str(tmp_path / "nope")], ["nope", "no such"], capsys, watch=[tmp_path])
