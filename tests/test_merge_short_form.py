"""One config for a merge named by its models: `dusk merge A B --flags` and the recipe's merge stage validate through
MergeShortForm and build the same MergeConfig; the flags are generated from its fields (old spellings kept)."""

from pathlib import Path

import pytest
import yaml

from dusk.cli import build_parser
from dusk.errors import DuskError
from dusk.merge.commands import build_config
from dusk.stages.kind import StagePaths, validate
from dusk.stages.merge import MERGE


def _cli(*argv: str):
    return build_config(build_parser().parse_args(["merge", *argv]))


def _stage(out: Path, **raw):
    fields = validate(MERGE, raw, "stage m")
    return MERGE.prepare(fields, StagePaths(out, out.parent / "work", out.parent / "cache"), False)


def _same(a, b) -> None:
    assert a.model_dump(exclude={"force"}) == b.model_dump(exclude={"force"})


def test_the_command_and_the_stage_build_the_same_merge(tmp_path: Path) -> None:
    out = tmp_path / "o"
    cli = _cli("a", "b", "--method", "ties", "--base", "c", "--density", "0.5", "--weights", "1,2", "--out", str(out))
    stage = _stage(out, models=["a", "b"], method="ties", base_model="c", density=0.5, weights=[1, 2])
    _same(cli, stage)
    expected = [{"weight": 1.0, "density": 0.5}, {"weight": 2.0, "density": 0.5}]
    assert [entry.parameters for entry in cli.models] == expected


def test_old_and_new_flag_spellings_and_a_config_file_agree(tmp_path: Path) -> None:
    out = str(tmp_path / "o")
    old = _cli("a", "b", "--method", "slerp", "--base", "b", "--t", "0.3", "--out", out)
    new = _cli("a", "b", "--method", "slerp", "--base-model", "b", "--t", "0.3", "--out", out)
    spaced = _cli("a", "b", "--method", "slerp", "--base-model", "b", "--parameters", "{t: 0.3}", "--out", out)
    config = tmp_path / "flags.yaml"
    config.write_text(yaml.safe_dump({"method": "slerp", "base_model": "b", "t": 0.3, "out": out}))
    from_file = _cli("a", "b", "--config", str(config))
    for other in (new, spaced, from_file):
        _same(old, other)
    assert old.base_model == "b" and old.parameters == {"t": 0.3}


def test_slerp_of_two_models_takes_the_first_as_base_in_both_forms(tmp_path: Path) -> None:
    out = tmp_path / "o"
    _same(_cli("a", "b", "--method", "slerp", "--t", "0.5", "--out", str(out)),
          _stage(out, models=["a", "b"], method="slerp", t=0.5))  # fmt: skip
    assert _stage(out, models=["a", "b"], method="slerp", t=0.5).base_model == "a"


def test_the_stage_refuses_what_the_command_refuses(tmp_path: Path) -> None:
    with pytest.raises(DuskError, match=r"stage m: .*slerp needs --t"):
        _stage(tmp_path / "o", models=["a", "b"], method="slerp")
    with pytest.raises(DuskError, match=r"stage m: .*'x,y': expected comma-separated numbers"):
        _stage(tmp_path / "o", models=["a", "b"], weights="x,y")
