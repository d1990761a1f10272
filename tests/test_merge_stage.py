"""The recipe's `merge` stage kind: default weights only for methods that have a `weight` parameter (as the short
form `dusk merge A B --method M`), so karcher/model_stock/slerp stages merge without an unused-parameter warning and
ties/task_arithmetic stages without `weights:` merge instead of failing on a missing weight."""

import logging
from pathlib import Path

import pytest
import yaml
from bad_input_helpers import assert_refused
from safetensors.torch import load_file

from dusk.errors import DuskError
from dusk.merge.config import short_form_config
from dusk.stages.kind import StagePaths, validate
from dusk.stages.merge import MERGE


def _prepare(tmp_path: Path, **raw):
    fields = validate(MERGE, raw, "stage m")
    return MERGE.prepare(fields, StagePaths(tmp_path / "out", tmp_path / "work", tmp_path / "cache"), False)


def _weights(cfg) -> list:
    return [(entry.parameters or {}).get("weight") for entry in cfg.models]


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        ("karcher", {}),
        ("model_stock", {"base_model": "c"}),
        ("slerp", {"base_model": "a", "parameters": {"t": 0.5}}),
        ("nearswap", {"base_model": "a", "parameters": {"t": 0.01}}),
        ("arcee_fusion", {"base_model": "a"}),
    ],
)
def test_methods_without_weight_get_none_and_no_warning(tmp_path, caplog, method, extra) -> None:
    with caplog.at_level(logging.WARNING):
        cfg = _prepare(tmp_path, models=["a", "b"], method=method, **extra)
    assert _weights(cfg) == [None, None]
    assert "not used by merge method" not in caplog.text


@pytest.mark.parametrize("method", ["linear", "ties", "task_arithmetic", "della", "nuslerp", "multislerp"])
def test_weighted_methods_get_the_short_forms_default(tmp_path, method) -> None:
    """The stage and `dusk merge A B --method M` give the same default weights (1/n for linear, else 1)."""
    cfg = _prepare(tmp_path, models=["a", "b", "c"], method=method, base_model="c")
    short = short_form_config(["a", "b", "c"], method, tmp_path / "short", base="c")
    assert _weights(cfg) == _weights(short) == ([1 / 3] * 3 if method == "linear" else [1.0] * 3)


def test_model_parameters_weight_is_kept(tmp_path) -> None:
    cfg = _prepare(tmp_path, models=["a", "b"], method="ties", base_model="c", model_parameters=[{"weight": 0.7}, {}])
    assert _weights(cfg) == [0.7, 1.0]


def test_weight_given_twice_is_refused(tmp_path) -> None:
    with pytest.raises(DuskError, match=r"stage m: .*model_parameters\[1\] sets 'weight' and so does weights"):
        _prepare(tmp_path, models=["a", "b"], method="ties", weights=[1, 1], model_parameters=[{}, {"weight": 2}])


def test_ties_stage_without_weights_merges(tmp_path, caplog, tiny_llama_4, tiny_llama_4b) -> None:
    """A ties stage without `weights:` used to fail at run time: 'merge method ties needs parameter weight'."""
    cfg = _prepare(
        tmp_path, models=[str(tiny_llama_4b)], method="ties", base_model=str(tiny_llama_4),
        model_parameters=[{"density": 0.5}],
    )  # fmt: skip
    out = MERGE.run(cfg)
    assert load_file(next(Path(out).glob("*.safetensors")))


def test_karcher_stage_merges_without_warning(tmp_path, caplog, tiny_llama_4, tiny_llama_4b) -> None:
    with caplog.at_level(logging.WARNING):
        cfg = _prepare(tmp_path, models=[str(tiny_llama_4), str(tiny_llama_4b)], method="karcher")
        out = MERGE.run(cfg)
    assert load_file(next(Path(out).glob("*.safetensors")))
    assert "not used" not in caplog.text


@pytest.mark.parametrize(
    ("stage", "culprits"),
    [
        pytest.param(
            {
                "kind": "merge",
                "models": ["tiny-llama", "tiny-llama"],
                "method": "ties",
                "base_model": "tiny-llama",
                "weights": [1, 1],
                "model_parameters": [{}, {"weight": 2}],
            },
            ["stage m", "model_parameters[1] sets 'weight'", "weights"],
            id="weight-in-weights-and-model-parameters",
        ),  # fmt: skip
        pytest.param(
            {"kind": "merge", "models": ["tiny-llama"], "method": "ties", "weights": [1, 1]},
            ["stage m", "weights (--weights): 2 value(s) for 1 model(s)"],
            id="weights-count",
        ),
    ],
)
def test_bad_merge_stage_is_refused_before_any_work(stage, culprits, tmp_path, capsys) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"stages": {"m": stage}}))
    assert_refused(["run", str(recipe), "--run-dir", str(tmp_path / "run")], culprits, capsys)
    assert not (tmp_path / "run").exists()
