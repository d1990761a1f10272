"""Bad merge input: each error names what is wrong and what was expected, and no output directory is left behind."""

import json
from pathlib import Path

import pytest
from merge_fixtures import merge_models  # noqa: F401
from safetensors.torch import load_file, save_file

from dusk.errors import DuskError
from dusk.merge import run as merge_run
from dusk.merge.config import load_merge_config, short_form_config
from dusk.models.tiny import build_tiny_model


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "merge.yaml"
    path.write_text(text)
    return path


def _linear(models: list[Path]) -> str:
    lines = ["merge_method: linear", "models:"]
    for model in models:
        lines += [f"  - model: {model}", "    parameters: {weight: 0.5}"]
    return "\n".join(lines) + "\n"


def _fails(cfg_or_path, tmp_path: Path, match: str) -> None:
    with pytest.raises(DuskError, match=match):
        cfg = cfg_or_path if not isinstance(cfg_or_path, Path) else load_merge_config(cfg_or_path, tmp_path / "out")
        merge_run.run(cfg)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp")]


def test_different_architecture(merge_models: list[Path], tmp_path: Path) -> None:  # noqa: F811
    qwen = build_tiny_model(tmp_path / "qwen", "qwen2", num_layers=4, seed=3)
    _fails(_write(tmp_path, _linear([merge_models[0], qwen])), tmp_path, "different architecture.*Qwen2ForCausalLM")


def test_different_hidden_size(merge_models: list[Path], tmp_path: Path) -> None:  # noqa: F811
    narrow = build_tiny_model(tmp_path / "narrow", "llama", num_layers=4, hidden=32, seed=3)
    _fails(_write(tmp_path, _linear([merge_models[0], narrow])), tmp_path, r"hidden_size differs \(32 vs 64\)")


def _edited_copy(source: Path, out: Path, edit) -> Path:
    out.mkdir()
    for item in source.iterdir():
        if item.suffix != ".safetensors":
            (out / item.name).write_bytes(item.read_bytes())
    tensors = load_file(source / "model.safetensors")
    edit(tensors)
    save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    return out


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        (
            lambda name: name == "model.norm.weight",
            r"tensor model.norm.weight exists in .*m0 but is missing from .*broken",
        ),
        (lambda name: name.endswith("mlp.up_proj.weight"), r"tensor model.layers.<i>.mlp.up_proj.weight exists in"),
        (lambda name: name == "model.layers.1.mlp.up_proj.weight", r"layer 1 has different tensors.*mlp.up_proj"),
    ],
)
def test_missing_tensor_is_named(merge_models: list[Path], tmp_path: Path, drop, message: str) -> None:  # noqa: F811
    def edit(tensors):
        for name in [n for n in tensors if drop(n)]:
            tensors.pop(name)

    broken = _edited_copy(merge_models[1], tmp_path / "broken", edit)
    _fails(_write(tmp_path, _linear([merge_models[0], broken])), tmp_path, message)


def test_different_shape_names_tensor_and_both_shapes(merge_models: list[Path], tmp_path: Path) -> None:  # noqa: F811
    name = "model.layers.2.self_attn.o_proj.weight"

    def edit(tensors):
        tensors[name] = tensors[name][:, :32].contiguous()

    broken = _edited_copy(merge_models[1], tmp_path / "broken", edit)
    _fails(_write(tmp_path, _linear([merge_models[0], broken])), tmp_path, rf"{name} has shape \[64, 32\].*\[64, 64\]")


def test_vocabulary_size_differs(merge_models: list[Path], tmp_path: Path) -> None:  # noqa: F811
    def edit(tensors):
        embed = tensors["model.embed_tokens.weight"]
        tensors["model.embed_tokens.weight"] = embed[:-2].contiguous()

    smaller = _edited_copy(merge_models[1], tmp_path / "smaller", edit)
    config = json.loads((smaller / "config.json").read_text())
    config["vocab_size"] -= 2
    (smaller / "config.json").write_text(json.dumps(config))
    text = _linear([merge_models[0], smaller]) + "tokenizer_source: base\n"
    _fails(_write(tmp_path, text), tmp_path, "vocabularies differ.*384.*382.*tokenizer_source.*re-map")


def test_weights_summing_to_zero(merge_models: list[Path], tmp_path: Path) -> None:  # noqa: F811
    cfg = short_form_config([str(m) for m in merge_models[:2]], "linear", tmp_path / "out", weights=[1.0, -1.0])
    _fails(cfg, tmp_path, r"weights \[1.0, -1.0\] sum to zero")


@pytest.mark.parametrize("density", [0, -0.5, 1.5])
def test_density_outside_unit_interval(merge_models: list[Path], tmp_path: Path, density: float) -> None:  # noqa: F811
    models = [str(m) for m in merge_models[1:]]
    with pytest.raises(DuskError, match=rf"density {density}.* outside \(0, 1\]"):
        short_form_config(models, "ties", tmp_path / "out", base=str(merge_models[0]), density=density)


def test_density_gradient_checked_in_yaml(merge_models: list[Path], tmp_path: Path) -> None:  # noqa: F811
    text = f"merge_method: ties\nbase_model: {merge_models[0]}\nparameters: {{density: [0.5, 1.2]}}\n" + _linear(
        merge_models[1:]
    ).replace("merge_method: linear\n", "")
    with pytest.raises(DuskError, match=r"merge.yaml: .*parameters.density: density 1.2 is outside \(0, 1\]"):
        load_merge_config(_write(tmp_path, text), tmp_path / "out")


def test_unknown_method_lists_known_ones(merge_models: list[Path], tmp_path: Path) -> None:  # noqa: F811
    text = _linear(merge_models[:2]).replace("linear", "averge")
    with pytest.raises(DuskError, match="unknown merge method 'averge'.*dare_ties.*linear.*slerp.*ties"):
        load_merge_config(_write(tmp_path, text), tmp_path / "out")


def test_unknown_parameter_warns_and_names_the_known_ones(
    merge_models: list[Path],  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """mergekit ignores parameters a method does not read: dusk warns (naming them) instead of refusing; a typo of
    a required one still fails, at planning, before anything is written."""
    text = _linear(merge_models[:2]).replace("{weight: 0.5}", "{wieght: 0.5}", 1)
    with caplog.at_level("WARNING", logger="dusk.merge.config"):
        cfg = load_merge_config(_write(tmp_path, text), tmp_path / "out")
    assert "parameter 'wieght' is not used by merge method linear" in caplog.text
    assert "its parameters: normalize, weight" in caplog.text
    _fails(cfg, tmp_path, "needs parameter 'weight'")


def test_slerp_tolerates_a_weight_like_mergekit(
    merge_models: list[Path],  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """mergekit's own tests give slerp models a `weight`; dusk merges the config and warns that it is unused."""
    a, b = merge_models[:2]
    text = (
        f"merge_method: slerp\nbase_model: {a}\nparameters: {{t: 0.3}}\nmodels:\n"
        f"  - model: {a}\n    parameters: {{weight: 0.6}}\n  - model: {b}\n    parameters: {{weight: 0.4}}\n"
    )
    with caplog.at_level("WARNING", logger="dusk.merge.config"):
        out = merge_run.run(load_merge_config(_write(tmp_path, text), tmp_path / "out"))
    assert (out / "config.json").exists()
    assert "parameter 'weight' is not used by merge method slerp" in caplog.text


def test_missing_required_parameter(merge_models: list[Path], tmp_path: Path) -> None:  # noqa: F811
    text = f"merge_method: linear\nmodels:\n  - model: {merge_models[0]}\n  - model: {merge_models[1]}\n"
    _fails(_write(tmp_path, text), tmp_path, "needs parameter 'weight'")


def test_yaml_that_does_not_parse_gives_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 0.5\n")
    with pytest.raises(DuskError, match=r"merge.yaml:5:1: not valid YAML.*line 5, column 1"):
        load_merge_config(path, tmp_path / "out")


def test_method_needs_base(merge_models: list[Path], tmp_path: Path) -> None:  # noqa: F811
    text = _linear(merge_models[:2]).replace("linear", "ties")
    _fails(_write(tmp_path, text), tmp_path, "ties needs a base_model")


def test_slerp_takes_two_models(merge_models: list[Path], tmp_path: Path) -> None:  # noqa: F811
    cfg = short_form_config([str(m) for m in merge_models], "slerp", tmp_path / "out", base=str(merge_models[0]), t=0.5)
    _fails(cfg, tmp_path, "slerp takes exactly 2 input model")


def test_existing_output_needs_force(merge_models: list[Path], tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "out").mkdir()
    cfg = short_form_config([str(m) for m in merge_models[:2]], "linear", tmp_path / "out")
    with pytest.raises(DuskError, match="already exists; pass --force"):
        merge_run.run(cfg)


def test_output_appears_only_after_completion(
    merge_models: list[Path],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While tensors are being written the output directory does not exist; a failure midway leaves nothing."""
    out = tmp_path / "out"
    seen = []
    real = merge_run.produce

    def watching(job, plan, cfg):
        seen.append(out.exists())
        if len(seen) == 5:
            raise DuskError("stop here")
        return real(job, plan, cfg)

    monkeypatch.setattr(merge_run, "produce", watching)
    cfg = short_form_config([str(m) for m in merge_models[:2]], "linear", out)
    with pytest.raises(DuskError, match="stop here"):
        merge_run.run(cfg)
    assert seen == [False] * 5 and not out.exists()
    assert list(tmp_path.iterdir()) == []
