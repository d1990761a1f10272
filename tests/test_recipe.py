"""Recipes: loading, layering (defaults, budgets, overrides), DAG order, and every bad input named before work."""

from pathlib import Path

import pytest
import yaml

from dusk.errors import DuskError
from dusk.recipe import load_recipe, parse_overrides
from dusk.stages import KINDS

RECIPES = sorted((Path(__file__).parent.parent / "recipes").glob("*.yaml"))


def write(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def two_stage(**extra) -> dict:
    return {
        "name": "t",
        "stages": {
            "dus": {"kind": "upscale", "model": "tiny-llama", "drop": 1},
            "dus2": {"kind": "upscale", "from": "dus", "drop": 1},
        },
        **extra,
    }


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_every_shipped_recipe_validates(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.stages, path
    names = list(recipe.stages)
    for stage in recipe.stages.values():  # dependency order: every input comes earlier
        assert all(names.index(dep) < names.index(stage.name) for dep in stage.depends)


def test_from_fills_the_primary_input_and_orders_stages(tmp_path: Path) -> None:
    data = two_stage()
    data["stages"] = dict(reversed(list(data["stages"].items())))  # the dependent stage first in the file
    recipe = load_recipe(write(tmp_path, data))
    assert list(recipe.stages) == ["dus", "dus2"]
    assert recipe.stages["dus2"].refs == {"model": ("dus",)}
    assert recipe.stages["dus2"].fields["model"] == "dus"
    assert recipe.stages["dus2"].settings["shard_size"] == "2GiB"  # defaults filled for the cache key


def test_defaults_budget_and_overrides_layer_in_order(tmp_path: Path) -> None:
    data = two_stage(
        defaults={"upscale": {"shard_size": "1GiB", "dtype": "bfloat16"}},
        budgets={"cpu": {"upscale": {"shard_size": "64MiB"}, "dus2": {"dtype": "float16"}}},
    )
    path = write(tmp_path, data)
    plain = load_recipe(path)
    assert plain.stages["dus"].settings["shard_size"] == "1GiB"
    cpu = load_recipe(path, ["budget=cpu"])
    assert cpu.stages["dus"].settings["shard_size"] == "64MiB"
    assert cpu.stages["dus"].settings["dtype"] == "bfloat16"
    assert cpu.stages["dus2"].settings["dtype"] == "float16"
    over = load_recipe(path, ["budget=cpu", "dus.shard_size=8MiB", "dus2.drop=0"])
    assert over.stages["dus"].settings["shard_size"] == "8MiB"
    assert over.stages["dus2"].settings["drop"] == 0 and isinstance(over.stages["dus2"].settings["drop"], int)


def test_overrides_are_coerced_to_the_field_type(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, two_stage()), ["dus.drop=1", "dus.shard_size=123"])
    assert recipe.stages["dus"].settings["drop"] == 1
    assert recipe.stages["dus"].settings["shard_size"] == "123"  # a str field keeps the text, not the int
    with pytest.raises(DuskError, match=r"override dus\.drop.*'many'"):
        load_recipe(write(tmp_path, two_stage()), ["dus.drop=many"])


def test_for_each_expands_one_stage_per_model(tmp_path: Path) -> None:
    data = two_stage()
    data["stages"]["evals"] = {"kind": "eval", "for_each": ["dus", "dus2"], "tasks": "arc_challenge", "limit": 2}
    recipe = load_recipe(write(tmp_path, data), ["evals.limit=3", "evals/dus2.limit=4"])
    assert recipe.stages["evals/dus"].refs == {"model": ("dus",)}
    assert recipe.stages["evals/dus"].settings["limit"] == 3
    assert recipe.stages["evals/dus2"].settings["limit"] == 4
    assert recipe.stages["evals/dus"].settings["tasks"] == ["arc_challenge"]
    assert load_recipe(write(tmp_path, data), ["evals.tasks=h6"]).stages["evals/dus"].settings["tasks"] == ["h6"]


def test_report_section(tmp_path: Path) -> None:
    data = two_stage(
        report={
            "title": "T",
            "tables": [{"name": "ablation", "rows": ["dus", {"stage": "dus2", "label": "DUS twice"}]}],
        }
    )
    recipe = load_recipe(write(tmp_path, data))
    table = recipe.tables[0]
    assert recipe.title == "T" and table.name == "ablation"
    assert [(row.stage, row.label) for row in table.rows] == [("dus", "dus"), ("dus2", "DUS twice")]


# bad input --------------------------------------------------------------------------------------------------------
def test_unknown_kind_lists_known_kinds(tmp_path: Path) -> None:
    data = two_stage()
    data["stages"]["x"] = {"kind": "finetune"}
    with pytest.raises(DuskError, match="unknown stage kind 'finetune'; known kinds: ") as info:
        load_recipe(write(tmp_path, data))
    assert all(kind in str(info.value) for kind in KINDS)


def test_unknown_field_names_stage_and_lists_valid_fields(tmp_path: Path) -> None:
    data = two_stage()
    data["stages"]["dus"]["drops"] = 3
    with pytest.raises(
        DuskError, match=r"stage dus: unknown field 'drops' for kind upscale; valid fields: model, drop"
    ):
        load_recipe(write(tmp_path, data))


def test_bad_field_value_names_stage_and_field(tmp_path: Path) -> None:
    data = two_stage()
    data["stages"]["dus"]["drop"] = -2
    with pytest.raises(DuskError, match=r"stage dus: field drop: .*greater than or equal to 0"):
        load_recipe(write(tmp_path, data))


def test_out_is_reserved_for_the_runner(tmp_path: Path) -> None:
    data = two_stage()
    data["stages"]["dus"]["out"] = "/etc/somewhere"
    with pytest.raises(DuskError, match="field 'out' is set by the runner"):
        load_recipe(write(tmp_path, data))


def test_cycle_is_named(tmp_path: Path) -> None:
    data = {
        "stages": {
            "a": {"kind": "upscale", "from": "b", "drop": 1},
            "b": {"kind": "upscale", "from": "a", "drop": 1},
        }
    }
    with pytest.raises(DuskError, match=r"cycle: a -> b -> a"):
        load_recipe(write(tmp_path, data))


def test_missing_input_stage(tmp_path: Path) -> None:
    data = two_stage()
    data["stages"]["dus2"]["from"] = "dus_v0"
    with pytest.raises(DuskError, match=r"stage dus2: input stage 'dus_v0' does not exist; stages: dus, dus2"):
        load_recipe(write(tmp_path, data))


def test_model_that_is_neither_stage_nor_model(tmp_path: Path) -> None:
    data = two_stage()
    data["stages"]["dus"]["model"] = "smollm3-1b"
    with pytest.raises(DuskError, match=r"stage dus: field model: 'smollm3-1b' is neither a stage"):
        load_recipe(write(tmp_path, data))


def test_unknown_dataset_is_named_before_any_work(tmp_path: Path) -> None:
    data = two_stage()
    data["stages"]["sft"] = {"kind": "sft", "from": "dus2", "data": "alpaca_gpt5"}
    with pytest.raises(DuskError, match=r"stage sft: field data: 'alpaca_gpt5' is neither a stage .* known dataset"):
        load_recipe(write(tmp_path, data))


def test_override_of_missing_field_or_stage(tmp_path: Path) -> None:
    path = write(tmp_path, two_stage())
    with pytest.raises(DuskError, match=r"override dus\.lr: stage dus \(upscale\) has no field 'lr'; valid fields: "):
        load_recipe(path, ["dus.lr=1e-5"])
    with pytest.raises(DuskError, match=r"no stage 'sft'; stages: dus, dus2"):
        load_recipe(path, ["sft.lr=1e-5"])
    with pytest.raises(DuskError, match=r"expected STAGE\.FIELD=VALUE"):
        load_recipe(path, ["dus.drop"])
    with pytest.raises(DuskError, match=r"budget 'gpu' is not defined"):
        load_recipe(path, ["budget=gpu"])


def test_report_naming_unknown_stage(tmp_path: Path) -> None:
    data = two_stage(report={"tables": [{"name": "table3", "rows": ["dus", "sft_v9"]}]})
    with pytest.raises(DuskError, match=r"report table table3: row 'sft_v9' is not a stage of this recipe"):
        load_recipe(write(tmp_path, data))


def test_yaml_errors_and_unknown_top_level_keys(tmp_path: Path) -> None:
    with pytest.raises(DuskError, match=r"recipe.yaml:3:4: not valid YAML.*line 3, column 4"):
        load_recipe(write(tmp_path, "stages:\n  a: {kind: upscale\n  b: 1\n"))
    with pytest.raises(DuskError, match=r"unknown key 'stage'; expected one of: name, description"):
        load_recipe(write(tmp_path, {"stage": {}}))


def test_all_stage_errors_are_reported_together(tmp_path: Path) -> None:
    data = two_stage()
    data["stages"]["dus"]["drop"] = "x"
    data["stages"]["dus2"]["colour"] = "red"
    with pytest.raises(DuskError) as info:
        load_recipe(write(tmp_path, data))
    assert "stage dus:" in str(info.value) and "stage dus2:" in str(info.value)


def test_parse_overrides() -> None:
    assert parse_overrides(["budget=cpu", "a.b=1", "e/x.limit=2"]) == (
        "cpu",
        [parse_overrides(["a.b=1"])[1][0], parse_overrides(["e/x.limit=2"])[1][0]],
    )
    assert parse_overrides(["e/x.limit=2"])[1][0].stage == "e/x"


def test_cli_reports_recipe_errors_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from dusk.cli import main

    path = write(tmp_path, two_stage())
    assert main(["run", str(path), "dus.colour=red", "--run-dir", str(tmp_path / "run")]) == 2
    assert "dusk: error:" in capsys.readouterr().err and not (tmp_path / "run").exists()
    assert main(["run", str(path), "--dry-run", "--run-dir", str(tmp_path / "run")]) == 0
    assert "2 to run" in capsys.readouterr().out


def test_cli_takes_overrides_after_options(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from dusk.cli import main

    path, run_dir = write(tmp_path, two_stage()), str(tmp_path / "run")
    assert main(["run", str(path), "--dry-run", "--run-dir", run_dir, "dus.colour=red"]) == 2
    assert "colour" in capsys.readouterr().err  # the override was read, not dropped as an unknown argument
    assert main(["run", str(path), "dus.drop=0", "--dry-run", "dus2.drop=0", "--run-dir", run_dir]) == 0
    assert "2 to run" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["run", str(path), "--dry-run", "dus.drop=0", "--colour"])
    assert info.value.code == 2 and "unrecognized arguments: --colour" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "model", "c=d"])  # only `dusk run` takes KEY=VALUE words


def test_a_long_bad_value_is_quoted_short(tmp_path: Path) -> None:
    huge = {f"key{i}": "x" * 20 for i in range(200)}
    recipe = {"name": "t", "stages": {"dus": {"kind": "upscale", "model": "tiny-llama", "drop": huge}}}
    with pytest.raises(DuskError) as info:
        load_recipe(write(tmp_path, recipe))
    message = str(info.value)
    assert "stage dus" in message and "field drop" in message and "(got {'key0': 'xxx" in message
    assert "key199" not in message and len(message) < 600
