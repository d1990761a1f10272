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
from typing import Any

from dusk.atomic import atomic_output_dir, check_output_dir, check_writable_parent
from dusk.cards import write_card
from dusk.config_flags import build_config
from dusk.errors import DuskError
from dusk.models.architecture import (
    check_compatible,
    read_model_config,
    residual_writers,
)
from dusk.models.dus_blend import blend_layers, check_blend
from dusk.models.dus_expand import check_expand, expand_layers
from dusk.models.dus_layers import OutputLayer
from dusk.models.io import copy_side_files, resolve_model
from dusk.models.safetensors_io import (
    SAFETENSORS_DTYPES,
    TORCH_DTYPES,
    TensorSpec,
    check_finite,
    check_output_not_input,
    shard_bytes,
    write_sharded,
)
from dusk.models.stacking import InputModel, check_layer_range, open_models, stacked_config, stacked_layers
from dusk.models.upscale_config import OutputDtype, Slice, SliceSource, UpscaleConfig

log = logging.getLogger(__name__)


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
    return [_slice(model, 0, num_layers - drop), _slice(model, drop, num_layers)]


def model_layer_count(model: str) -> int:
    """The decoder layer count of a model argument, from its config.json."""
    num_layers = read_model_config(resolve_model(model)).get("num_hidden_layers")
    if not isinstance(num_layers, int):
        raise DuskError(f"{model}: config.json has no integer num_hidden_layers")
    return num_layers


def resolve(cfg: UpscaleConfig) -> UpscaleConfig:
    """The config with its model form (`drop` M or auto, `expand` alone) turned into slices; a scan runs for drop
    auto and its choice goes into `record`. A config that has slices is returned as it is."""
    from dusk.models import dus_scan

    if cfg.slices is not None or cfg.scan:
        return cfg
    model, drop = cfg.model, cfg.drop
    num_layers = model_layer_count(model)
    record: dict = {}
    if drop == "auto":
        dus_scan.check_target_layers(cfg.layers, num_layers)
        samples = dus_scan.DEFAULT_SAMPLES if cfg.samples is None else cfg.samples
        dus_scan.check_scan_args(samples)
        data = dus_scan.check_scan_data(cfg.data)
        scan = dus_scan.scan_model(model, resolve_model(model), data, samples)
        ranked = dus_scan.rank_stackings(scan, cfg.layers)
        slices = [_slice(model, 0, ranked[0].a), _slice(model, ranked[0].b, num_layers)]
        record = {"scan": scan.to_json(), "choice": _choice(ranked[0]),
                  "runner_up": _choice(ranked[1]) if len(ranked) > 1 else None}  # fmt: skip
    elif drop is not None:
        slices = solar_slices(model, num_layers, int(drop))
    else:
        slices = [_slice(model, 0, num_layers)]
    if cfg.expand is not None:
        check_expand(cfg.expand, sum(item.source.layer_range[1] - item.source.layer_range[0] for item in slices))
    form = {"model": None, "drop": None, "layers": None, "data": None, "samples": None}
    resolved = cfg.model_copy(update={"slices": slices, **form})
    resolved._record = record
    return resolved


def _choice(stacking) -> dict:  # noqa: ANN001 (a dus_scan.Stacking, imported lazily)
    return {"a": stacking.a, "b": stacking.b, "seam_distance": stacking.seam_distance}


def config_for_drop(
    model: str, drop: int, out: Path, force: bool = False, dtype: OutputDtype | None = None, shard_size: str = "2GiB"
) -> UpscaleConfig:
    """The resolved UpscaleConfig of `dusk upscale MODEL --drop M`."""
    return config_for_model(model, out, drop=drop, force=force, dtype=dtype, shard_size=shard_size)


def config_for_model(model: str, out: Path, **options: Any) -> UpscaleConfig:
    """The resolved UpscaleConfig of `dusk upscale MODEL` with UpscaleConfig's fields as `options` (drop, layers,
    expand, blend, data, samples, force, dtype, shard_size; `scan_data`/`scan_samples` are data/samples). Every
    option is checked before the scan runs."""
    renamed = {"scan_data": "data", "scan_samples": "samples"}
    values = {renamed.get(name, name): value for name, value in options.items() if value is not None}
    return resolve(build_config(UpscaleConfig, {"model": model, "out": out, **values}, model))


def _slice(model: str, start: int, end: int) -> Slice:
    return Slice(sources=[SliceSource(model=model, layer_range=(start, end))])


def load_slices_file(path: Path, out: Path, force: bool = False, shard_size: str = "2GiB") -> UpscaleConfig:
    """The UpscaleConfig of a mergekit-style `slices:` YAML (optionally with `merge_method: passthrough`, `dtype`)."""
    return build_config(
        UpscaleConfig, {"slices": path, "out": out, "force": force, "shard_size": shard_size}, str(path)
    )


@dataclass(frozen=True)
class UpscalePlan:
    """Each output tensor's source (model, tensor name), in write order, and the output config."""

    tensors: list[tuple[TensorSpec, InputModel, str]]
    config: dict
    layer_sources: list[tuple[str, int]]  # per output layer: (model argument, source layer index)
    mixes: dict[str, tuple[tuple[float, InputModel, str], ...]]  # output tensors that are not plain copies
    provenance: dict  # what dusk_upscale.json adds for --expand / --blend


def plan_upscale(
    slices: list[Slice], dtype: str | None = None, expand: str | None = None, blend: int | None = None
) -> UpscalePlan:
    """Map every output tensor to its source tensor(s) and build the output config."""
    sources = open_models([item.source.model for item in slices])
    base = sources[slices[0].source.model]
    for index, item in enumerate(slices):
        source = sources[item.source.model]
        check_compatible(base.config, source.config, base.arg, source.arg)
        start, end = item.source.layer_range
        check_layer_range(
            f"slice {index} ({source.arg}, layer_range [{start}, {end}))", (start, end), source.layout.num_layers
        )
    ranges = [(item.source.model, item.source.layer_range) for item in slices]
    layers = [OutputLayer.copy(model, layer) for model, layer in stacked_layers(ranges)]
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
    config = stacked_config(base.config, layer_sources, [base.config] * len(layer_sources), dtype, base.arg)
    return UpscalePlan(tensors, config, layer_sources, mixes, provenance)


def _transform(
    layers: list[OutputLayer], slices: list[Slice], base: InputModel, expand: str | None, blend: int | None
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


def run(cfg: UpscaleConfig) -> Path:
    """Write the up-scaled model directory and return its path."""
    from tqdm import tqdm

    cfg = resolve(cfg)
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


def _mix(spec: TensorSpec, terms: tuple[tuple[float, InputModel, str], ...]):
    """sum(weight * source tensor) in float32 (zeros for no terms), stored in the output tensor's dtype."""
    import torch

    total = torch.zeros(spec.shape, dtype=torch.float32)
    for weight, source, name in terms:
        total += weight * source.tensors.read(name).to(torch.float32)
    return total.to(TORCH_DTYPES[spec.dtype])
