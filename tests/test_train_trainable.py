"""--trainable all|new|layers:A-B: frozen tensors come out bit-identical, and get no optimizer state."""

from pathlib import Path

import pytest
import torch

from dusk.errors import DuskError
from dusk.models import upscale
from dusk.models.safetensors_io import ModelTensors
from dusk.train import pretrain, sft
from dusk.train.checkpoint import list_checkpoints
from dusk.train.config import PretrainConfig, SFTConfig
from tests.train_fixtures import shakespeare_text, single_thread, tiny_config  # noqa: F401


@pytest.fixture(scope="module")
def expanded(tiny_llama_4: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny_llama_4 with an identity copy after every 2 layers: 6 layers, new ones 2 and 5."""
    out = tmp_path_factory.mktemp("models") / "pro"
    return upscale.run(upscale.config_for_model(str(tiny_llama_4), out, expand="every:2"))


def _train(model: Path, data: Path, out: Path, trainable: str) -> tuple[Path, int]:
    cfg = tiny_config(PretrainConfig, model, data, out, max_steps=3, save_every=3, trainable=trainable)
    pretrain.run(cfg)
    optimizer_bytes = (list_checkpoints(cfg.work_dir)[-1] / "optimizer.pt").stat().st_size
    return cfg.out, optimizer_bytes


def _changed(before: ModelTensors, after: ModelTensors) -> set[str]:
    return {name for name in before.names() if not torch.equal(before.read(name), after.read(name))}


def test_new_trains_only_the_inserted_layers(expanded: Path, shakespeare_text: Path, tmp_path: Path) -> None:  # noqa: F811
    new_out, new_bytes = _train(expanded, shakespeare_text, tmp_path / "new", "new")
    all_out, all_bytes = _train(expanded, shakespeare_text, tmp_path / "all", "all")
    base = ModelTensors(expanded)
    changed = _changed(base, ModelTensors(new_out))
    assert changed and all(name.startswith(("model.layers.2.", "model.layers.5.")) for name in changed)
    assert "model.layers.2.self_attn.o_proj.weight" in changed  # the zeroed projections start to learn
    assert any(name.startswith("model.layers.0.") for name in _changed(base, ModelTensors(all_out)))
    assert new_bytes < all_bytes / 2  # AdamW state only for the 2 new layers of 6 (embeddings frozen too)


def test_layer_range(expanded: Path, alpaca_pairs_or_text: Path, tmp_path: Path) -> None:
    cfg = tiny_config(SFTConfig, expanded, alpaca_pairs_or_text, tmp_path / "sft", max_steps=2, trainable="layers:1-3")
    changed = _changed(ModelTensors(expanded), ModelTensors(sft.run(cfg)))
    assert changed and {name.split(".")[2] for name in changed} <= {"1", "2", "3"}


@pytest.fixture
def alpaca_pairs_or_text(tmp_path: Path) -> Path:
    from tests.train_fixtures import write_jsonl

    pairs = [{"prompt": f"Count to {i}.", "response": " ".join(str(j) for j in range(i))} for i in range(3, 40)]
    return write_jsonl(tmp_path / "pairs.jsonl", pairs)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("some", "expected all, new, or layers:A-B"),
        ("layers:3-1", "A must not be above B"),
        ("layers:0-9", "layers 0 to 3"),
        ("new", "no dusk_upscale.json"),
    ],
)
def test_trainable_refused_before_work(
    tiny_llama_4: Path,
    shakespeare_text: Path,  # noqa: F811
    tmp_path: Path,
    spec: str,
    match: str,
) -> None:
    with pytest.raises((DuskError, ValueError), match=match):
        tiny_config(PretrainConfig, tiny_llama_4, shakespeare_text, tmp_path / "o", trainable=spec)
