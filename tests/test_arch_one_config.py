"""Issue 12's seams, checked: `dusk upscale`'s flags come from the one config its recipe stage validates, the runner
fills input artifacts into the recipe's typed config without validating it again, and DUS and merge share one
layer-range check."""

import argparse
from pathlib import Path

import pytest
import yaml

import dusk.recipe
import dusk.stages.kind
from dusk.cli import build_parser
from dusk.config_flags import flag_name
from dusk.errors import DuskError
from dusk.models.stacking import check_layer_range, stacked_layers
from dusk.models.upscale_config import UpscaleConfig
from dusk.recipe import load_recipe
from dusk.runner import artifact_path, run_recipe
from dusk.stages import RUNNER_FIELDS, field_specs, get_kind


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def test_upscale_flags_and_recipe_fields_are_the_config_fields() -> None:
    parser = _subparser("upscale")
    options = {option for action in parser._actions for option in action.option_strings}
    fields = set(UpscaleConfig.model_fields)
    assert {flag_name(name) for name in fields - {"model"}} <= options  # model: the MODEL argument
    assert next(action for action in parser._actions if action.dest == "model").option_strings == []
    assert set(field_specs(get_kind("upscale"))) == fields - RUNNER_FIELDS
    assert get_kind("upscale").schema() is UpscaleConfig
    # defaults live in the config, not in argparse: a flag not given is not passed on
    args = parser.parse_args(["m", "--drop", "auto", "--layers", "6", "--out", "o"])
    assert (args.model, args.drop, args.layers) == ("m", "auto", 6) and not hasattr(args, "shard_size")


def test_the_recipe_form_and_the_flag_form_build_the_same_config(tmp_path: Path) -> None:
    from dusk.config_flags import config_from_args

    args = _subparser("upscale").parse_args(["tiny-llama", "--drop", "1", "--dtype", "bfloat16", "--out", "o"])
    flags = config_from_args(UpscaleConfig, args)
    stage = dusk.stages.kind.validate(get_kind("upscale"), {"model": "tiny-llama", "drop": 1, "dtype": "bfloat16"}, "s")
    assert flags.model_dump(exclude={"out"}) == stage.model_dump(exclude={"out"})
    assert flags.drop == 1  # the flag's text became the integer


def test_recipe_refuses_the_command_only_scan(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"stages": {"d": {"kind": "upscale", "model": "tiny-llama", "scan": True}}}))
    with pytest.raises(DuskError, match="field scan: a stage writes a model"):
        load_recipe(path)


def test_runner_fills_inputs_into_the_typed_config_without_validating_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "r.yaml"
    stages = {"dus": {"kind": "upscale", "model": "tiny-llama", "drop": 1}, "pro": {"kind": "upscale", "from": "dus",
              "expand": "every:2"}}  # fmt: skip
    path.write_text(yaml.safe_dump({"name": "arch", "stages": stages}))
    recipe = load_recipe(path)
    assert recipe.stages["pro"].config.model == "dus"  # validated once, the input still named by its stage
    filled = recipe.stages["pro"].config_with_inputs({"dus": tmp_path / "dus-artifact"})
    assert filled.model == str(tmp_path / "dus-artifact") and filled.expand == "every:2"

    def refuse(*_args: object) -> None:
        raise AssertionError("a stage's fields were validated a second time")

    monkeypatch.setattr(dusk.stages.kind, "validate", refuse)
    monkeypatch.setattr(dusk.recipe, "validate", refuse)
    run_dir = tmp_path / "run"
    summary = run_recipe(recipe, run_dir, show_progress=False)
    assert summary.states == {"dus": "ran", "pro": "ran"}
    assert (artifact_path(run_dir, "pro") / "config.json").is_file()


def test_one_layer_range_check_and_stacking() -> None:
    assert stacked_layers([("a", (0, 2)), ("b", (1, 3))]) == [("a", 0), ("a", 1), ("b", 1), ("b", 2)]
    for bad, problem in (((3, 1), "reversed range"), ((2, 2), "empty range"), ((0, 5), "out of range")):
        with pytest.raises(DuskError, match=f"slice 0: {problem}.*a model with 4 layers"):
            check_layer_range("slice 0", bad, 4)
    check_layer_range("slice 0", (0, 4), 4)


def test_a_recipe_stage_may_name_a_slices_file_whose_slices_enter_its_settings(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("slices:\n  - sources: [{model: tiny-llama, layer_range: [0, 2]}]\ndtype: bfloat16\n")
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"stages": {"d": {"kind": "upscale", "slices": str(spec)}}}))
    settings = load_recipe(path).stages["d"].settings
    assert settings["slices"] == [{"sources": [{"model": "tiny-llama", "layer_range": [0, 2]}]}]
    assert settings["dtype"] == "bfloat16"  # the file's dtype, as `dusk upscale --slices` takes it
