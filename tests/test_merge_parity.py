"""dusk merge against mergekit 0.1.5 on the same configs over tiny Llamas: max abs difference <= 1e-6 (fp32)."""

from pathlib import Path

import pytest
import torch
from merge_fixtures import max_abs_diff, merge_models, read_all, run_dusk, run_mergekit  # noqa: F401


def _models_block(entries: list[tuple[Path, str | None]]) -> str:
    lines = ["models:"]
    for model, params in entries:
        lines.append(f"  - model: {model}")
        if params:
            lines.append(f"    parameters: {params}")
    return "\n".join(lines) + "\n"


def _config(kind: str, m: list[Path]) -> str:
    """The configs under test, by name (m[0] is the base where there is one)."""
    gta = "merge_method: {method}\nbase_model: {base}\n{extra}"
    configs = {
        "linear": "merge_method: linear\n" + _models_block([(m[0], "{weight: 0.3}"), (m[1], "{weight: 0.9}")]),
        "linear-3-unnormalized": "merge_method: linear\nparameters: {normalize: false}\n"
        + _models_block([(m[0], "{weight: 0.5}"), (m[1], "{weight: -0.25}"), (m[2], "{weight: [0.2, 1.0]}")]),
        "linear-out-bfloat16": "merge_method: linear\nout_dtype: bfloat16\n"
        + _models_block([(m[1], "{weight: 0.3}"), (m[2], "{weight: 0.9}")]),
        "task_arithmetic": gta.format(method="task_arithmetic", base=m[0], extra="parameters: {lambda: 0.7}\n")
        + _models_block([(m[1], "{weight: 0.3}"), (m[2], "{weight: [0.9, 0.1]}")]),
        "ties-0.4-0.7": gta.format(method="ties", base=m[0], extra="")
        + _models_block([(m[1], "{weight: 0.3, density: 0.4}"), (m[2], "{weight: 0.9, density: 0.7}")]),
        "ties-0.1-1.0-unnormalized": gta.format(
            method="ties", base=m[0], extra="parameters: {normalize: false, int8_mask: true, lambda: 1.5}\n"
        )
        + _models_block([(m[0], None), (m[1], "{weight: 1.0, density: 0.1}"), (m[2], "{weight: 0.5, density: 1.0}")]),
        "ties-filters": gta.format(
            method="ties",
            base=m[0],
            extra="parameters:\n  density: [{filter: mlp, value: 0.2}, {value: [0.9, 0.3]}]\n  weight: 0.5\n",
        )
        + _models_block([(m[1], None), (m[2], "{weight: [{filter: self_attn, value: 2.0}, {value: 0.25}]}")]),
        "slerp-scalar": f"merge_method: slerp\nbase_model: {m[0]}\nparameters: {{t: 0.35}}\n"
        + _models_block([(m[0], None), (m[1], None)]),
        "slerp-gradient": f"merge_method: slerp\nbase_model: {m[1]}\nparameters:\n  t:\n"
        "    - filter: self_attn\n      value: [0, 0.5, 0.3, 0.7, 1]\n"
        "    - filter: mlp\n      value: [1, 0.5, 0.7, 0.3, 0]\n    - value: 0.5\n"
        + _models_block([(m[0], None), (m[1], None)]),
        "passthrough-slices": "merge_method: passthrough\nslices:\n"
        f"  - sources: [{{model: {m[0]}, layer_range: [0, 3]}}]\n"
        f"  - sources: [{{model: {m[1]}, layer_range: [1, 4]}}]\n"
        f"  - sources: [{{model: {m[2]}, layer_range: [2, 3], parameters: {{scale: 0.5}}}}]\n",
        "slerp-slices": f"merge_method: slerp\nbase_model: {m[0]}\n"
        "parameters: {t: [{filter: layers.1., value: 0.9}, {value: [0.1, 0.5]}]}\nslices:\n"
        f"  - sources: [{{model: {m[0]}, layer_range: [1, 3]}}, {{model: {m[1]}, layer_range: [0, 2]}}]\n"
        f"  - sources: [{{model: {m[0]}, layer_range: [3, 4]}}, {{model: {m[1]}, layer_range: [3, 4]}}]\n",
    }
    return configs[kind]


KINDS = [
    "linear",
    "linear-3-unnormalized",
    "linear-out-bfloat16",
    "task_arithmetic",
    "ties-0.4-0.7",
    "ties-0.1-1.0-unnormalized",
    "ties-filters",
    "slerp-scalar",
    "slerp-gradient",
    "passthrough-slices",
    "slerp-slices",
]


@pytest.mark.parametrize("kind", KINDS)
def test_same_output_as_mergekit(kind: str, merge_models: list[Path], tmp_path: Path) -> None:  # noqa: F811
    text = _config(kind, merge_models)
    ours = read_all(run_dusk(text, tmp_path))
    theirs = read_all(run_mergekit(text, tmp_path / "mergekit"))
    assert max_abs_diff(ours, theirs) <= 1e-6
    # the merge did something: the output is not simply one of the inputs
    first = read_all(merge_models[0])
    common = [n for n in ours if n in first and ours[n].shape == first[n].shape]
    assert any(not torch.equal(ours[n], first[n]) for n in common)


def test_passthrough_layers_are_exact_copies(merge_models: list[Path], tmp_path: Path) -> None:  # noqa: F811
    out = read_all(run_dusk(_config("passthrough-slices", merge_models), tmp_path))
    a, b, c = (read_all(m) for m in merge_models)
    assert torch.equal(out["model.layers.2.mlp.up_proj.weight"], a["model.layers.2.mlp.up_proj.weight"])
    assert torch.equal(out["model.layers.3.self_attn.q_proj.weight"], b["model.layers.1.self_attn.q_proj.weight"])
    assert torch.equal(out["model.layers.6.mlp.down_proj.weight"], c["model.layers.2.mlp.down_proj.weight"] * 0.5)
    assert torch.equal(out["model.embed_tokens.weight"], a["model.embed_tokens.weight"])
    assert torch.equal(out["model.norm.weight"], c["model.norm.weight"] * 0.5)  # post weights: last slice's model
    assert len({n.split(".")[2] for n in out if n.startswith("model.layers.")}) == 7
