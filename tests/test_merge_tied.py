"""Optional tied weights, as mergekit handles them: a model whose lm_head is tied to its embeddings (no
lm_head.weight in its files) merges with one that has its own lm_head; the tied model's embeddings stand in for
its lm_head, the output has an lm_head and says so (tie_word_embeddings false), bit-equal to mergekit."""

import json
from pathlib import Path

import pytest
import torch
from merge_fixtures import merge_models, read_all, run_dusk, run_mergekit  # noqa: F401
from safetensors.torch import save_file

from dusk.models.io import copy_side_files


@pytest.fixture(scope="module")
def untied(merge_models: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """merge_models[1] with its own lm_head (its embeddings plus noise) and tie_word_embeddings false."""
    source = merge_models[1]
    out = tmp_path_factory.mktemp("untied") / "untied"
    out.mkdir()
    tensors = read_all(source)
    assert "lm_head.weight" not in tensors  # the tiny Llamas tie their lm_head
    embed = tensors["model.embed_tokens.weight"]
    noise = torch.randn(embed.shape, generator=torch.Generator().manual_seed(5)).to(embed.dtype)
    tensors["lm_head.weight"] = embed + 0.1 * noise
    save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((source / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": False}))
    copy_side_files(source, out)
    return out


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


CONFIGS = {
    "linear": "merge_method: linear\nmodels:\n  - {{model: {tied}, parameters: {{weight: 0.7}}}}\n"
    "  - {{model: {untied}, parameters: {{weight: 0.3}}}}\n",
    # the untied model is the base; the tied one's per-model filter on lm_head matches its stand-in, as mergekit's
    "ties": "merge_method: ties\nbase_model: {untied}\nmodels:\n  - model: {tied}\n    parameters:\n"
    "      weight: [{{filter: lm_head, value: 0.4}}, {{value: 1.0}}]\n      density: 0.5\n"
    "dtype: bfloat16\n",
}


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_tied_and_untied_merge_like_mergekit(case, merge_models, untied, tmp_path) -> None:  # noqa: F811
    text = CONFIGS[case].format(tied=merge_models[0], untied=untied)
    out = run_dusk(text, tmp_path)
    ours, theirs = read_all(out), read_all(run_mergekit(text, tmp_path / "mergekit"))
    assert sorted(ours) == sorted(theirs)
    assert "lm_head.weight" in ours
    for name, tensor in ours.items():
        assert torch.equal(tensor, theirs[name].to(tensor.dtype)), name
    assert not torch.equal(ours["lm_head.weight"], ours["model.embed_tokens.weight"])
    assert json.loads((out / "config.json").read_text())["tie_word_embeddings"] is False


def test_all_tied_writes_no_lm_head(merge_models, tmp_path) -> None:  # noqa: F811
    text = f"merge_method: linear\nmodels:\n  - {{model: {merge_models[0]}, parameters: {{weight: 1}}}}\n" + (
        f"  - {{model: {merge_models[2]}, parameters: {{weight: 1}}}}\n"
    )
    out = run_dusk(text, tmp_path)
    assert "lm_head.weight" not in read_all(out)
    assert json.loads((out / "config.json").read_text())["tie_word_embeddings"] is True
