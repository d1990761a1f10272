"""Depth Up-Scaling (SOLAR, Kim et al. 2023): stack layer ranges of one or more models into a deeper model.

SOLAR's recipe keeps layers [0, n-m) of a model and layers [m, n) of a copy: 2(n-m) layers (n=32, m=8 -> 48).
The general form is a list of slices, mergekit-style, each one half-open layer range of one model. Every output
layer's tensors are copied byte for byte from their source layer; embeddings, final norm and lm head come from
the first slice's model. Tensors stream one at a time, so memory stays at about one tensor.

    dusk upscale smollm2-135m --drop 8 --out runs/smollm2-dus          # 30 -> 44 layers
    dusk upscale --slices slices.yaml --out runs/stacked

The forms beyond SOLAR's fixed drop (see docs/dus.md): `--drop auto --layers L` picks the stacking from a layer
scan (dus_scan), `--expand every:K` inserts identity copies (dus_expand), `--blend K` cross-fades the seam
(dus_blend). Each output layer is an `OutputLayer` recipe; a plain copy stays a byte-for-byte copy.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dusk.atomic import atomic_output_dir, check_output_dir, check_writable_parent
from dusk.cards import write_card
from dusk.errors import DuskError
from dusk.models.architecture import (
    LayerLayout,
    check_compatible,
    layer_layout,
    per_layer_config_keys,
    read_model_config,
    residual_writers,
    without_remote_code,
)
from dusk.models.dus_blend import blend_layers, check_blend
from dusk.models.dus_expand import check_expand, expand_layers
from dusk.models.dus_layers import OutputLayer
from dusk.models.io import copy_side_files, resolve_model
from dusk.models.safetensors_io import (
    SAFETENSORS_DTYPES,
    TORCH_DTYPES,
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
    expand: str | None = Field(None, description="every:K: insert an identity copy after every K layers (LLaMA-Pro)")
    blend: int | None = Field(None, description="cross-fade the K layers on each side of the seam of two slices")
    record: dict = Field(default_factory=dict, description="extra provenance for dusk_upscale.json (scan, choice)")

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


def model_layer_count(model: str) -> int:
    """The decoder layer count of a model argument, from its config.json."""
    num_layers = read_model_config(resolve_model(model)).get("num_hidden_layers")
    if not isinstance(num_layers, int):
        raise DuskError(f"{model}: config.json has no integer num_hidden_layers")
    return num_layers


def check_forms(drop: int | str | None, layers: int | None, blend: int | None) -> None:
    """Refuse option combinations that mean nothing, before anything is loaded."""
    if layers is not None and drop != "auto":
        raise DuskError(f"--layers {layers}: only used with --drop auto (it picks the stacking with that many layers)")
    if blend is not None and drop is None:
        raise DuskError(f"--blend {blend}: blends the seam of a stacking; give it with --drop M or --drop auto")
    if blend is not None and blend < 1:
        raise DuskError(f"--blend {blend}: must be at least 1 (the layers on each side of the seam to interpolate)")


def config_for_model(
    model: str,
    out: Path,
    drop: int | str | None = None,
    layers: int | None = None,
    expand: str | None = None,
    blend: int | None = None,
    scan_data: str | None = None,
    scan_samples: int | None = None,
    **options,
) -> UpscaleConfig:
    """The UpscaleConfig of `dusk upscale MODEL` with --drop M | --drop auto --layers L, --expand, --blend.

    `options` are UpscaleConfig's force, dtype and shard_size. Every option is checked before the scan runs.
    """
    from dusk.models import dus_scan

    check_forms(drop, layers, blend)
    if drop is None and expand is None:
        raise DuskError(f"{model}: give --drop M, --drop auto --layers L or --expand every:K")
    num_layers = model_layer_count(model)
    record: dict = {}
    if drop == "auto":
        dus_scan.check_target_layers(layers, num_layers)
        samples = dus_scan.DEFAULT_SAMPLES if scan_samples is None else scan_samples
        dus_scan.check_scan_args(samples)
        data = dus_scan.check_scan_data(scan_data)
        scan = dus_scan.scan_model(model, resolve_model(model), data, samples)
        ranked = dus_scan.rank_stackings(scan, layers)
        best = ranked[0]
        slices = [_slice(model, 0, best.a), _slice(model, best.b, num_layers)]
        record = {
            "scan": scan.to_json(),
            "choice": {"a": best.a, "b": best.b, "seam_distance": best.seam_distance},
            "runner_up": ({"a": ranked[1].a, "b": ranked[1].b, "seam_distance": ranked[1].seam_distance})
            if len(ranked) > 1
            else None,
        }
    elif drop is not None:
        slices = solar_slices(model, num_layers, int(drop))
    else:
        slices = [_slice(model, 0, num_layers)]
    stacked = sum(item.source.layer_range[1] - item.source.layer_range[0] for item in slices)
    if expand is not None:
        check_expand(expand, stacked)
    return UpscaleConfig(slices=slices, out=out, expand=expand, blend=blend, record=record, **options)


def _slice(model: str, start: int, end: int) -> Slice:
    return Slice(sources=[SliceSource(model=model, layer_range=(start, end))])


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
    mixes: dict[str, tuple[tuple[float, _Source, str], ...]]  # output tensors that are not plain copies
    provenance: dict  # what dusk_upscale.json adds for --expand / --blend


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


def plan_upscale(
    slices: list[Slice], dtype: str | None = None, expand: str | None = None, blend: int | None = None
) -> UpscalePlan:
    """Map every output tensor to its source tensor(s) and build the output config."""
    sources = _open_sources(slices)
    base = sources[slices[0].source.model]
    layers: list[OutputLayer] = []
    for index, item in enumerate(slices):
        source = sources[item.source.model]
        check_compatible(base.config, source.config, base.arg, source.arg)
        start, end = item.source.layer_range
        _check_range(source, start, end, index)
        layers += [OutputLayer.copy(source.arg, layer) for layer in range(start, end)]
    layers, provenance = _transform(layers, slices, base, expand, blend)
    cast = SAFETENSORS_DTYPES[_torch_dtype(dtype)] if dtype else None
    tensors, mixes = [], {}
    for name in base.layout.shared:
        tensors.append((_spec(base.tensors.spec(name), name, cast), base, name))
    for out_layer, layer in enumerate(layers):
        arg, src_layer = layer.source
        source = sources[arg]
        for suffix in source.layout.suffixes:
            name = source.layout.name(src_layer, suffix)
            spec = _spec(source.tensors.spec(name), base.layout.name(out_layer, suffix), cast)
            tensors.append((spec, source, name))
            if not layer.is_copy:
                terms = () if layer.is_zeroed(suffix) else layer.terms
                mixes[spec.name] = tuple((w, sources[m], sources[m].layout.name(i, suffix)) for w, m, i in terms)
    layer_sources = [layer.source for layer in layers]
    config = _output_config(base.config, layer_sources, dtype, base.arg)
    return UpscalePlan(tensors, config, layer_sources, mixes, provenance)


def _transform(
    layers: list[OutputLayer], slices: list[Slice], base: _Source, expand: str | None, blend: int | None
) -> tuple[list[OutputLayer], dict]:
    """Apply --blend (on the two slices) and then --expand (on the stack); return the layers and their provenance."""
    provenance: dict = {}
    if blend is not None:
        if len(slices) != 2:
            raise DuskError(f"--blend {blend}: needs exactly two slices (SOLAR stacking), got {len(slices)}")
        first, second = (item.source.layer_range for item in slices)
        same = slices[0].source.model == slices[1].source.model
        check_blend(blend, first, second, base.layout.num_layers, same)
        window = blend_layers(layers, blend, first, second)
        provenance.update(blend=blend, blended_layers=[{"layer": p, **layers[p].to_json()} for p in window])
    if expand is not None:
        k = check_expand(expand, len(layers))
        zeroed = residual_writers(base.config, base.arg)
        for module in zeroed:
            if not any(suffix.startswith(module + ".") for suffix in base.layout.suffixes):
                raise DuskError(f"{base.arg}: --expand: the layers have no {module}.* tensors to set to zero")
        layers, new = expand_layers(layers, k, zeroed)
        provenance.update(expand=expand, new_layers=new, zeroed=list(zeroed))
    return layers, provenance


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
    plan = plan_upscale(cfg.slices, cfg.dtype, cfg.expand, cfg.blend)
    check_output_not_input(cfg.out, {source.directory for _spec, source, _name in plan.tensors})
    by_name = {spec.name: (source, name) for spec, source, name in plan.tensors}
    total = sum(spec.nbytes for spec, _s, _n in plan.tensors)

    def read(spec: TensorSpec):
        if spec.name in plan.mixes:
            return _mix(spec, plan.mixes[spec.name])
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
            "method": _method(cfg),
            "dtype": cfg.dtype,
            "slices": [s.model_dump(mode="json") for s in cfg.slices],
            "layer_sources": plan.layer_sources,
            **plan.provenance,
            **cfg.record,
        }
        (tmp / "dusk_upscale.json").write_text(json.dumps(provenance, indent=2) + "\n")
        write_card(tmp, out_name=str(cfg.out))
    log.info("wrote %s (%d layers)", cfg.out, plan.config["num_hidden_layers"])
    return cfg.out


def _method(cfg: UpscaleConfig) -> str:
    return "expand" if cfg.expand else "dus-blend" if cfg.blend else "dus"


def _mix(spec: TensorSpec, terms: tuple[tuple[float, _Source, str], ...]):
    """sum(weight * source tensor) in float32 (zeros for no terms), stored in the output tensor's dtype."""
    import torch

    total = torch.zeros(spec.shape, dtype=torch.float32)
    for weight, source, name in terms:
        total += weight * source.tensors.read(name).to(torch.float32)
    return total.to(TORCH_DTYPES[spec.dtype])
