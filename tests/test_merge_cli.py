"""`dusk merge`: the config form and the short form, sharded output that loads in transformers, tokenizer_source."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from merge_fixtures import merge_models, read_all  # noqa: F401


def dusk(*argv: str) -> int:
    """Run `dusk merge ...` through the real CLI."""
    from dusk import cli

    return cli.main(["merge", *argv])


def test_short_form_linear_is_the_weighted_average(merge_models: list[Path], tmp_path: Path) -> None:  # noqa: F811
    a, b = str(merge_models[0]), str(merge_models[1])
    assert dusk(a, b, "--method", "linear", "--weights", "1,3", "--out", str(tmp_path / "avg")) == 0
    out, x, y = read_all(tmp_path / "avg"), read_all(a), read_all(b)
    for name in out:
        torch.testing.assert_close(out[name], (x[name] + 3 * y[name]) / 4, rtol=0, atol=1e-6)


def test_config_form_sharded_output_loads_in_transformers(merge_models: list[Path], tmp_path: Path) -> None:  # noqa: F811
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = tmp_path / "ties.yaml"
    config.write_text(
        f"merge_method: ties\nbase_model: {merge_models[0]}\nparameters: {{weight: 0.5, density: 0.5}}\n"
        f"models:\n  - model: {merge_models[1]}\n  - model: {merge_models[2]}\n"
    )
    out = tmp_path / "ties"
    assert dusk(str(config), "--out", str(out), "--shard-size", "200KB") == 0
    shards = sorted(out.glob("model-*.safetensors"))
    assert len(shards) > 1 and (out / "model.safetensors.index.json").exists()
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer("The capital of France", return_tensors="pt").input_ids
    assert torch.isfinite(model(ids).logits).all()
    merged = read_all(out)
    assert torch.equal(model.model.layers[1].mlp.up_proj.weight.detach(), merged["model.layers.1.mlp.up_proj.weight"])
    assert json.loads((out / "dusk_merge.json").read_text())["merge_method"] == "ties"


def test_short_form_flags_do_not_mix_with_a_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "m.yaml").write_text("merge_method: linear\n")
    assert dusk(str(tmp_path / "m.yaml"), "--method", "ties", "--out", str(tmp_path / "out")) == 2
    assert "--method: short-form flags do not combine with a config file" in capsys.readouterr().err


def test_short_form_weights_count_must_match(merge_models: list[Path], tmp_path: Path, capsys) -> None:  # noqa: F811
    a, b = str(merge_models[0]), str(merge_models[1])
    assert dusk(a, b, "--weights", "0.2,0.3,0.5", "--out", str(tmp_path / "out")) == 2
    assert "3 value(s) for 2 model(s)" in capsys.readouterr().err


def test_tokenizer_source_picks_whose_tokenizer_is_copied(merge_models: list[Path], tmp_path: Path) -> None:  # noqa: F811
    other = tmp_path / "other"
    shutil.copytree(merge_models[1], other)
    tokenizer_config = json.loads((other / "tokenizer_config.json").read_text())
    tokenizer_config["model_max_length"] = 1234
    (other / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    config = tmp_path / "m.yaml"
    base = f"merge_method: slerp\nbase_model: {merge_models[0]}\nparameters: {{t: 0.5}}\n"
    models = f"models:\n  - model: {merge_models[0]}\n  - model: {other}\n"
    for source, expected in ((str(other), 1234), ("base", None)):
        config.write_text(base + models + f"tokenizer_source: {source}\n")
        assert dusk(str(config), "--out", str(tmp_path / "out"), "--force") == 0
        copied = json.loads((tmp_path / "out" / "tokenizer_config.json").read_text())
        assert copied.get("model_max_length") == expected or (
            expected is None and copied.get("model_max_length") != 1234
        )
    config.write_text(base + models + "tokenizer_source: nobody\n")
    assert dusk(str(config), "--out", str(tmp_path / "out2")) == 2
    assert not (tmp_path / "out2").exists()


def test_help_lists_every_registered_method() -> None:
    """The static method list of `dusk merge --help` names exactly the registered methods (no torch at parse)."""
    from dusk.merge.commands import METHODS_HELP
    from dusk.merge.methods import METHODS

    listed = {line.split()[0] for line in METHODS_HELP.splitlines()[1:] if line.strip()}
    assert listed == set(METHODS)
    assert all(METHODS[name].doc and (METHODS[name].reference or name == "passthrough") for name in METHODS)
