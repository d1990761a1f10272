"""Streaming merge I/O: read one tensor per input at a time, write sharded safetensors (the inputs are opened, headers
only, by `dusk.models.stacking.open_models`, which Depth Up-Scaling shares).

Nothing holds a whole model: for each output tensor the inputs' tensors are read from their safetensors files
(seek and read), merged, and written straight into the output shard file, so peak memory is a few tensors
(for elementwise methods, row blocks of them) whatever the number and size of the models.

    dusk merge A B --method linear --weights 0.5,0.5 --out runs/avg --shard-size 500MB
"""

from collections.abc import Callable
from pathlib import Path

import torch

from dusk.errors import DuskError
from dusk.merge.config import MergeConfig
from dusk.models.architecture import STRUCTURAL_KEYS
from dusk.models.io import copy_side_files
from dusk.models.safetensors_io import TensorSpec, shard_bytes, write_sharded
from dusk.models.stacking import InputModel, stacked_config

ROW_BLOCK_BYTES = 32 * 1024**2  # elementwise methods merge row blocks of about this many bytes per input
# Tensors an input may lack because its weights are tied to another (mergekit's `optional` weights with
# `tied_names`, e.g. a tied lm_head): the tied tensor stands in for it, and the output has it if any input does.
TIED = {"lm_head.weight": "model.embed_tokens.weight"}


def _vocab_rows(model: InputModel) -> tuple[str, int] | None:
    for name in model.layout.shared:
        if "embed" in name:
            return name, model.tensors.spec(name).shape[0]
    return None


def check_same_architecture(models: dict[str, InputModel], tokenizer_source: str | None) -> None:
    """Raise naming what differs: architecture, vocabulary (and what tokenizer_source would do), sizes, tensors."""
    items = list(models.values())
    first = items[0]
    for other in items[1:]:
        for key in ("architectures", "model_type"):
            if first.config.get(key) != other.config.get(key):
                raise DuskError(
                    f"cannot merge {other.arg} with {first.arg}: different architecture "
                    f"({key} {other.config.get(key)!r} vs {first.config.get(key)!r})"
                )
        _check_vocab(first, other, tokenizer_source)
        for key in STRUCTURAL_KEYS:
            if first.config.get(key) != other.config.get(key):
                raise DuskError(
                    f"cannot merge {other.arg} with {first.arg}: {key} differs "
                    f"({other.config.get(key)!r} vs {first.config.get(key)!r})"
                )
        for mine, theirs, prefix in (
            (first.layout.suffixes, other.layout.suffixes, f"{first.layout.prefix}<i>."),
            (first.layout.shared, other.layout.shared, ""),
        ):
            for name in sorted(set(mine) ^ set(theirs)):
                owner, lacking = (first, other) if name in mine else (other, first)
                if stand_in(lacking, name) == name:
                    raise DuskError(f"tensor {prefix}{name} exists in {owner.arg} but is missing from {lacking.arg}")


def stand_in(model: InputModel, name: str) -> str:
    """The tensor of `model` that stands for `name`: itself, or its tied tensor (TIED) when only that one exists."""
    tied = TIED.get(name)
    return tied if name not in model.tensors and tied is not None and tied in model.tensors else name


def shared_names(models: list[InputModel]) -> list[str]:
    """The tensors outside layers that the output has: the first model's, then tied ones only others have."""
    names = list(models[0].layout.shared)
    return names + [name for name in TIED if name not in names and any(name in m.layout.shared for m in models)]


def _check_vocab(first: InputModel, other: InputModel, tokenizer_source: str | None) -> None:
    mine, theirs = _vocab_rows(first), _vocab_rows(other)
    vocab = (first.config.get("vocab_size"), other.config.get("vocab_size"))
    rows = (mine[1] if mine else None, theirs[1] if theirs else None)
    if vocab[0] == vocab[1] and rows[0] == rows[1]:
        return
    chosen = f" (tokenizer_source: {tokenizer_source} was given)" if tokenizer_source else ""
    raise DuskError(
        f"vocabularies differ: {first.arg} has vocab_size {vocab[0]} ({mine[0] if mine else 'embeddings'} rows "
        f"{rows[0]}), {other.arg} has {vocab[1]} (rows {rows[1]}){chosen}. mergekit's tokenizer_source "
        "(base, union or a model) would build that tokenizer and re-map every model's embedding and lm_head rows "
        "token by token, giving tokens a model lacks a default embedding; dusk merges only models with the same "
        "vocabulary (its tokenizer_source only picks whose tokenizer files are copied): resize the embeddings "
        "of one model to the other's tokenizer first"
    )


def output_config(
    reference: dict,
    layer_configs: list[dict],
    layer_sources: list[tuple[str, int]],
    cfg: MergeConfig,
    untied: bool = False,
) -> dict:
    """The output config.json: the base's (or first model's) stacked (`stacked_config`), and `tie_word_embeddings`
    false when the output has its own lm_head (a tied base merged with an untied model: a tied config would make
    transformers drop the merged lm_head and reuse the embeddings)."""
    where = str(cfg.base_model or layer_sources[0][0])
    config = stacked_config(reference, layer_sources, layer_configs, cfg.out_dtype or cfg.dtype, where)
    if untied and config.get("tie_word_embeddings"):
        config["tie_word_embeddings"] = False
    return config


def row_blocks(spec: TensorSpec, block_bytes: int = ROW_BLOCK_BYTES) -> list[tuple[int, int]]:
    """Half-open row ranges [start, end) along dim 0 of about `block_bytes` each (one block for scalars)."""
    if not spec.shape or spec.nbytes <= block_bytes:
        return [(0, spec.shape[0] if spec.shape else 1)]
    row_bytes = spec.nbytes // spec.shape[0]
    step = max(1, block_bytes // max(row_bytes, 1))
    return [(start, min(start + step, spec.shape[0])) for start in range(0, spec.shape[0], step)]


def read_rows(model: InputModel, name: str, start: int, end: int) -> torch.Tensor:
    """Rows [start, end) of a tensor (dim 0), read straight from the file: a fresh tensor of that block only."""
    return model.tensors.read_rows(name, start, end)


def write_model(
    out_dir: Path,
    specs: list[TensorSpec],
    produce: Callable[[TensorSpec], torch.Tensor | bytes | bytearray],
    shard_size: str,
    on_tensor: Callable[[TensorSpec], None] | None = None,
) -> list[Path]:
    """Write the output tensors, produced one at a time in order, as (sharded) safetensors."""
    return write_sharded(out_dir, specs, produce, shard_bytes(shard_size), on_tensor)


def copy_tokenizer(source_dir: Path, out_dir: Path) -> list[str]:
    """Copy tokenizer, chat template and generation config files (never pickles) from the chosen model."""
    return copy_side_files(source_dir, out_dir)
