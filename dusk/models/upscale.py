"""Depth Up-Scaling (SOLAR, Kim et al. 2023): stack layer ranges of one or more models into a deeper model.

SOLAR's recipe keeps layers [0, n-m) of a model and layers [m, n) of a copy: 2(n-m) layers (n=32, m=8 -> 48).
The general form is a list of slices, mergekit-style, each one half-open layer range of one model. Every output
layer's tensors are copied byte for byte from their source layer; embeddings, final norm and lm head come from
the first slice's model. Tensors stream one at a time, so memory stays at about one tensor.

    dusk upscale smollm2-135m --drop 8 --out runs/smollm2-dus          # 30 -> 44 layers
    dusk upscale --slices slices.yaml --out runs/stacked
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dusk.atomic import atomic_output_dir, check_output_dir, check_writable_parent
from dusk.errors import DuskError
from dusk.models.architecture import (
    LayerLayout,
    check_compatible,
    layer_layout,
    per_layer_config_keys,
    read_model_config,
    without_remote_code,
)
from dusk.models.io import copy_side_files, resolve_model
from dusk.models.safetensors_io import (
    SAFETENSORS_DTYPES,
    ModelTensors,
    TensorSpec,
    check_finite,
    check_output_not_input,
    shard_bytes,
    write_sharded,
)
from dusk.yaml_file import read_yaml

log = logging.getLogger(__name__)
OutputDtype = Literal["float32", "bfloat16", "float16"]


class SliceSource(BaseModel):
    """One model's half-open layer range [start, end)."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(description="built-in name, model directory or .gguf file")
    layer_range: tuple[int, int] = Field(description="half-open range [start, end) of layer indices")


class Slice(BaseModel):
    """A block of output layers taken from one source (several sources would be a merge: see `dusk merge`)."""

    model_config = ConfigDict(extra="forbid")
    sources: list[SliceSource]

    @field_validator("sources")
    @classmethod
    def _one_source(cls, sources: list[SliceSource]) -> list[SliceSource]:
        if len(sources) != 1:
            raise ValueError(f"a DUS slice takes exactly one source, got {len(sources)} (use `dusk merge` to merge)")
        return sources

    @property
    def source(self) -> SliceSource:
        return self.sources[0]


class UpscaleConfig(BaseModel):
    """Everything `dusk upscale` needs: the slices, where to write, and how."""

    model_config = ConfigDict(extra="forbid")
    slices: list[Slice] = Field(min_length=1, description="layer ranges to stack, in output order")
    out: Path = Field(description="output model directory (created atomically)")
    force: bool = Field(False, description="replace an existing output directory")
    dtype: OutputDtype | None = Field(None, description="cast weights to this dtype (default: keep, bit for bit)")
    shard_size: str = Field("2GiB", description="maximum size of one safetensors shard")

    @field_validator("shard_size")
    @classmethod
    def _shard_size(cls, value: str) -> str:
        shard_bytes(value)
        return value


def check_drop(num_layers: int, drop: int) -> None:
    """Refuse a SOLAR `--drop` that leaves no layer of a copy (drop >= the layer count) or is negative."""
    if not 0 <= drop < num_layers:
        raise DuskError(
            f"--drop {drop}: must be in [0, {num_layers}) for a model with {num_layers} layers "
            f"(each copy keeps {num_layers} - drop layers)"
        )


def solar_slices(model: str, num_layers: int, drop: int) -> list[Slice]:
    """SOLAR's DUS as slices: [0, n-drop) of the model, then [drop, n) of a copy."""
    check_drop(num_layers, drop)
    return [
        Slice(sources=[SliceSource(model=model, layer_range=(0, num_layers - drop))]),
        Slice(sources=[SliceSource(model=model, layer_range=(drop, num_layers))]),
    ]


def config_for_drop(
    model: str, drop: int, out: Path, force: bool = False, dtype: OutputDtype | None = None, shard_size: str = "2GiB"
) -> UpscaleConfig:
    """The UpscaleConfig of `dusk upscale MODEL --drop M`."""
    num_layers = read_model_config(resolve_model(model)).get("num_hidden_layers")
    if not isinstance(num_layers, int):
        raise DuskError(f"{model}: config.json has no integer num_hidden_layers")
    return UpscaleConfig(
        slices=solar_slices(model, num_layers, drop), out=out, force=force, dtype=dtype, shard_size=shard_size
    )


def load_slices_file(path: Path, out: Path, force: bool = False, shard_size: str = "2GiB") -> UpscaleConfig:
    """Read a mergekit-style `slices:` YAML (optionally with `merge_method: passthrough` and `dtype`)."""
    data = read_yaml(path, "slices file")
    if not isinstance(data, dict) or "slices" not in data:
        raise DuskError(f"{path}: expected a mapping with a 'slices:' list")
    method = data.pop("merge_method", "passthrough")
    if method != "passthrough":
        raise DuskError(
            f"{path}: merge_method {method!r}: `dusk upscale` stacks slices (passthrough); "
            "use `dusk merge` for other methods"
        )
    unknown = set(data) - {"slices", "dtype"}
    if unknown:
        raise DuskError(f"{path}: unknown field(s) {sorted(unknown)}; expected slices, dtype, merge_method")
    try:
        return UpscaleConfig(
            slices=data["slices"], dtype=data.get("dtype"), out=out, force=force, shard_size=shard_size
        )
    except ValidationError as exc:
        from dusk.merge.config import validation_message

        raise DuskError(f"{path}: invalid slices: {validation_message(exc)}") from exc


@dataclass(frozen=True)
class _Source:
    arg: str
    directory: Path
    config: dict
    tensors: ModelTensors
    layout: LayerLayout


@dataclass(frozen=True)
class UpscalePlan:
    """Each output tensor's source (model directory, tensor name), in write order, and the output config."""

    tensors: list[tuple[TensorSpec, _Source, str]]
    config: dict
    layer_sources: list[tuple[str, int]]  # per output layer: (model argument, source layer index)


def _open_sources(slices: list[Slice]) -> dict[str, _Source]:
    sources: dict[str, _Source] = {}
    for item in slices:
        arg = item.source.model
        if arg not in sources:
            directory = resolve_model(arg)
            config, tensors = read_model_config(directory), ModelTensors(directory)
            sources[arg] = _Source(arg, directory, config, tensors, layer_layout(config, tensors.names(), arg))
    return sources


def _check_range(source: _Source, start: int, end: int, index: int) -> None:
    n = source.layout.num_layers
    where = f"slice {index} ({source.arg}, layer_range [{start}, {end}))"
    if start > end:
        raise DuskError(f"{where}: reversed range, start must be below end")
    if start == end:
        raise DuskError(f"{where}: empty range")
    if start < 0 or end > n:
        raise DuskError(f"{where}: out of range for a model with {n} layers (valid: 0 <= start < end <= {n})")


def plan_upscale(slices: list[Slice], dtype: str | None = None) -> UpscalePlan:
    """Map every output tensor to its source tensor and build the output config."""
    sources = _open_sources(slices)
    base = sources[slices[0].source.model]
    layer_sources: list[tuple[str, int]] = []
    for index, item in enumerate(slices):
        source = sources[item.source.model]
        check_compatible(base.config, source.config, base.arg, source.arg)
        start, end = item.source.layer_range
        _check_range(source, start, end, index)
        layer_sources += [(source.arg, layer) for layer in range(start, end)]
    cast = SAFETENSORS_DTYPES[_torch_dtype(dtype)] if dtype else None
    tensors = []
    for name in base.layout.shared:
        tensors.append((_spec(base.tensors.spec(name), name, cast), base, name))
    for out_layer, (arg, layer) in enumerate(layer_sources):
        source = sources[arg]
        for suffix in source.layout.suffixes:
            name = source.layout.name(layer, suffix)
            tensors.append((_spec(source.tensors.spec(name), base.layout.name(out_layer, suffix), cast), source, name))
    return UpscalePlan(tensors, _output_config(base.config, layer_sources, dtype, base.arg), layer_sources)


def _torch_dtype(name: str):
    from dusk.models.io import torch_dtype

    return torch_dtype(name)


def _spec(source: TensorSpec, out_name: str, cast: str | None) -> TensorSpec:
    floating = source.dtype in ("F32", "F16", "BF16", "F64")
    return TensorSpec(out_name, cast if cast and floating else source.dtype, source.shape)


def _output_config(base: dict, layer_sources: list[tuple[str, int]], dtype: str | None, where: str) -> dict:
    config = without_remote_code({key: value for key, value in base.items() if key != "quantization_config"}, where)
    for key in per_layer_config_keys(base):
        config[key] = [base[key][layer] for _arg, layer in layer_sources]
    config["num_hidden_layers"] = len(layer_sources)
    if dtype:
        config["dtype"] = dtype
    return config


def run(cfg: UpscaleConfig) -> Path:
    """Write the up-scaled model directory and return its path."""
    from tqdm import tqdm

    check_output_dir(cfg.out, cfg.force)
    check_writable_parent(cfg.out)
    plan = plan_upscale(cfg.slices, cfg.dtype)
    check_output_not_input(cfg.out, {source.directory for _spec, source, _name in plan.tensors})
    by_name = {spec.name: (source, name) for spec, source, name in plan.tensors}
    total = sum(spec.nbytes for spec, _s, _n in plan.tensors)

    def read(spec: TensorSpec):
        source, name = by_name[spec.name]
        if source.tensors.spec(name).dtype == spec.dtype:
            return source.tensors.read_bytes(name)  # bit-for-bit copy
        original = source.tensors.read(name)
        cast = original.to(_torch_dtype(cfg.dtype))
        check_finite(spec.name, cast, lambda: [original], f"values beyond the range of {cfg.dtype}")
        return cast

    with (
        atomic_output_dir(cfg.out, cfg.force) as tmp,
        tqdm(total=total, unit="B", unit_scale=True, desc="upscale", leave=False, disable=None) as bar,
    ):
        write_sharded(
            tmp,
            [spec for spec, _s, _n in plan.tensors],
            read,
            shard_bytes(cfg.shard_size),
            on_tensor=lambda spec: bar.update(spec.nbytes),
        )
        (tmp / "config.json").write_text(json.dumps(plan.config, indent=2, sort_keys=True) + "\n")
        base_dir = plan.tensors[0][1].directory
        copy_side_files(base_dir, tmp)
        provenance = {
            "method": "dus",
            "slices": [s.model_dump(mode="json") for s in cfg.slices],
            "layer_sources": plan.layer_sources,
        }
        (tmp / "dusk_upscale.json").write_text(json.dumps(provenance, indent=2) + "\n")
    log.info("wrote %s (%d layers)", cfg.out, plan.config["num_hidden_layers"])
    return cfg.out
