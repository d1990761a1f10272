"""Layer stacking, shared by Depth Up-Scaling (`dusk upscale`, a passthrough stacking plus the `drop` shorthand) and
`dusk merge`'s slices: opening the input models (headers only), checking each slice's half-open layer range, the
output's (model, layer) per layer, and the stacked model's config.json.

    python -c "from dusk.models.stacking import stacked_layers; print(stacked_layers([('m', (0, 2)), ('m', (1, 3))]))"
"""

from dataclasses import dataclass
from pathlib import Path

from dusk.errors import DuskError
from dusk.models.architecture import (
    LayerLayout,
    layer_layout,
    per_layer_config_keys,
    read_model_config,
    without_remote_code,
)
from dusk.models.io import resolve_model
from dusk.models.safetensors_io import ModelTensors


@dataclass(frozen=True)
class InputModel:
    """One input model: its argument as written, directory, config.json, tensors (headers) and layer layout."""

    arg: str
    directory: Path
    config: dict
    tensors: ModelTensors
    layout: LayerLayout


def open_models(args: list[str]) -> dict[str, InputModel]:
    """Resolve and open each distinct model argument (headers only; no weights are read)."""
    models: dict[str, InputModel] = {}
    for arg in args:
        if arg not in models:
            directory = resolve_model(arg)
            config, tensors = read_model_config(directory), ModelTensors(directory)
            models[arg] = InputModel(arg, directory, config, tensors, layer_layout(config, tensors.names(), arg))
    return models


def check_layer_range(where: str, layer_range: tuple[int, int], num_layers: int) -> None:
    """Refuse a layer range that is reversed, empty or outside the model's layers, naming the slice (`where`)."""
    start, end = layer_range
    problem = (
        "reversed range (start must be below end)" if start > end
        else "empty range" if start == end
        else "out of range" if start < 0 or end > num_layers
        else None
    )  # fmt: skip
    if problem:
        raise DuskError(f"{where}: {problem}; a model with {num_layers} layers takes 0 <= start < end <= {num_layers}")


def stacked_layers(ranges: list[tuple[str, tuple[int, int]]]) -> list[tuple[str, int]]:
    """The output's layers in order, each as (model argument, source layer), from (model, [start, end)) ranges."""
    return [(model, layer) for model, (start, end) in ranges for layer in range(start, end)]


def stacked_config(
    reference: dict, layer_sources: list[tuple[str, int]], layer_configs: list[dict], dtype: str | None, where: str
) -> dict:
    """The stacked model's config.json: the reference's, without quantization or remote code, with the layer count
    and each per-layer list (taken from each output layer's source config) updated, and `dtype` when cast."""
    config = without_remote_code(
        {key: value for key, value in reference.items() if key != "quantization_config"}, where
    )
    for key in per_layer_config_keys(reference):
        config[key] = [source[key][layer] for source, (_m, layer) in zip(layer_configs, layer_sources, strict=True)]
    config["num_hidden_layers"] = len(layer_sources)
    if dtype:
        config["dtype"] = dtype
        config.pop("torch_dtype", None)
    return config
