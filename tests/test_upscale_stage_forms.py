"""The `upscale` stage kind takes every form of `dusk upscale`: drop auto + layers, expand, blend, scan data."""

import json
from pathlib import Path

import pytest
import yaml

from dusk.errors import DuskError
from dusk.recipe import load_recipe
from dusk.runner import artifact_path, run_recipe


def _recipe(tmp_path: Path, stages: dict) -> Path:
    path = tmp_path / "dus.yaml"
    path.write_text(yaml.safe_dump({"name": "dus-forms", "stages": stages}, sort_keys=False))
    return path


def _record(run_dir: Path, stage: str) -> dict:
    return json.loads((artifact_path(run_dir, stage) / "dusk_upscale.json").read_text())


def test_recipe_with_every_form(tmp_path: Path, tiny_llama_4: Path) -> None:
    model = str(tiny_llama_4)
    stages = {
        "auto": {"kind": "upscale", "model": model, "drop": "auto", "layers": 6, "samples": 1},
        "auto_data": {
            "kind": "upscale",
            "model": model,
            "drop": "auto",
            "layers": 5,
            "samples": 1,
            "data": "gutenberg",
        },
        "blend": {"kind": "upscale", "model": model, "drop": 1, "blend": 1},
        "pro": {"kind": "upscale", "model": model, "expand": "every:2"},
        "pro_of_dus": {"kind": "upscale", "from": "blend", "expand": "every:3"},
    }
    run_dir = tmp_path / "run"
    run_recipe(load_recipe(_recipe(tmp_path, stages)), run_dir, show_progress=False)
    auto = _record(run_dir, "auto")
    assert auto["choice"]["a"] + 4 - auto["choice"]["b"] == 6 and auto["scan"]["data"] == "tinyshakespeare"
    assert _record(run_dir, "auto_data")["scan"]["data"] == "gutenberg"
    assert _record(run_dir, "blend")["method"] == "dus-blend"
    assert _record(run_dir, "pro")["new_layers"] == [2, 5]
    assert _record(run_dir, "pro_of_dus")["new_layers"] == [3, 7]


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"drop": -1}, "greater than or equal to 0"),
        ({"drop": "half"}, "drop"),
        ({}, "give either `model` with `drop`"),
        ({"drop": 1, "slices": []}, "give either"),
    ],
)
def test_stage_field_errors(tmp_path: Path, fields: dict, match: str) -> None:
    stages = {"d": {"kind": "upscale", "model": "tiny-llama", **fields}}
    with pytest.raises(DuskError, match=match):
        load_recipe(_recipe(tmp_path, stages))
