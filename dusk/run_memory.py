"""The memory plan of `dusk run --dry-run`: each training stage's estimated peak memory per device at its process
count and sharding (dusk/train/memory_plan.py, from config.json alone), and with `--device-memory` whether it fits
and what would make it fit.

A stage's model usually does not exist yet at dry-run time (it is an earlier stage's output). Its shape does:
training and merging keep their input's shape, and an up-scaling stage's output config is planned from its input's
config and tensor headers without reading weights. Only a shape a run decides (`drop: auto` picks the layers by a
scan; a merge's own `slices`) waits for the stages before it.

    dusk run recipes/solar-mini.yaml --dry-run --processes 8 --shard fsdp --device-memory 80GiB
"""

import json
import tempfile
from pathlib import Path
from typing import Any

from dusk.errors import DuskError
from dusk.launch import launched
from dusk.recipe import Stage
from dusk.runner import CACHED, PlanItem
from dusk.stages import StagePaths, get_kind, validate

TRAIN_KINDS = ("pretrain", "sft", "dpo", "sdpo")
SMALLEST_DEVICE = 64 * 1024**2  # a --device-memory below this is a size given without its unit


def parse_device_memory(text: str) -> int:
    """`--device-memory 80GiB` (KB/MB/GB/KiB/MiB/GiB, or bytes) as bytes; a bare small number is refused."""
    from dusk.models.safetensors_io import parse_size

    try:
        size = parse_size(text)
    except DuskError:
        units = "KB, MB, GB, KiB, MiB, GiB"
        raise DuskError(f"--device-memory {text!r}: expected a size such as 80GiB or 24GB ({units})") from None
    if size < SMALLEST_DEVICE:
        raise DuskError(f"--device-memory {text!r}: {size} bytes is too small for a device; give a unit, e.g. 80GiB")
    return size


def memory_plan_text(items: list[PlanItem], device_memory: int | None) -> str:
    """One block per training stage (`format_plan`), in the recipe's order; '' when the recipe trains nothing."""
    from dusk.train.memory_plan import format_plan, plan_rows

    shapes: dict[str, Path | None] = {}  # stage -> a directory whose config.json has its output's shape
    blocks = []
    with tempfile.TemporaryDirectory() as scratch:
        for item in items:
            stage = item.stage
            shapes[stage.name] = _output_shape(item, shapes, Path(scratch))
            if stage.kind not in TRAIN_KINDS:
                continue
            model_dir = _input_shape(stage, "model", shapes)
            if model_dir is None:
                blocks.append(f"{stage.name}: memory plan once its input model's shape is known (after inputs)")
                continue
            processes = stage.launch.processes if launched(stage.kind, stage.launch) else 1
            rows = plan_rows(_train_config(stage, model_dir), model_dir, processes, device_memory)
            blocks.append(format_plan(stage.name, rows, device_memory))
    return "\n\n".join(blocks)


def _input_shape(stage: Stage, field: str, shapes: dict[str, Path | None]) -> Path | None:
    """The shape directory of the model a stage reads in `field` (its first model, for a list)."""
    value = stage.fields.get(field)
    value = value[0] if isinstance(value, list | tuple) and value else value
    if not isinstance(value, str):
        return None
    if value in stage.refs.get(field, ()):
        return shapes.get(value)
    from dusk.models.io import resolve_model

    try:
        return resolve_model(value)
    except DuskError:
        return None


def _output_shape(item: PlanItem, shapes: dict[str, Path | None], scratch: Path) -> Path | None:
    """Where the stage's output shape can be read: its cached artifact, its input's (training, merging), a planned
    up-scaled config, or None (unknown before running, or not a model)."""
    stage = item.stage
    kind = get_kind(stage.kind)
    if item.state == CACHED:
        return kind.output(item.artifact) if kind.artifact == "model" else None
    if stage.kind in TRAIN_KINDS:
        return _input_shape(stage, "model", shapes)
    if stage.kind == "merge" and not stage.fields.get("slices"):
        return _input_shape(stage, "models", shapes)
    if stage.kind == "upscale":
        return _upscaled_shape(stage, shapes, scratch)
    return None


def _upscaled_shape(stage: Stage, shapes: dict[str, Path | None], scratch: Path) -> Path | None:
    """The up-scaled model's config.json, planned from its input's config and tensor headers (no weights read)."""
    from dusk.models.upscale import plan_upscale

    fields = dict(stage.fields)
    if fields.get("drop") == "auto" or (fields.get("slices") and stage.refs):
        return None  # the scan (or a slice of a model still to be made) decides the layers
    if "model" in stage.refs:
        source = shapes.get(fields["model"])
        if source is None:
            return None
        fields["model"] = str(source)
    kind = get_kind(stage.kind)
    out = scratch / stage.name
    try:
        cfg = kind.prepare(validate(kind, fields, f"stage {stage.name}"), StagePaths(out, out, out), False)
        config = plan_upscale(cfg.slices, cfg.dtype, cfg.expand, cfg.blend).config
    except DuskError:
        return None
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps(config))
    return out


def _train_config(stage: Stage, model_dir: Path) -> Any:
    """The stage's training config, its input stages stood in for by the shape directory (models) or their name."""
    fields = dict(stage.fields)
    kind = get_kind(stage.kind)
    for field, refs in stage.refs.items():
        stand_in = str(model_dir) if field in kind.inputs else f"(output of {refs[0]})"
        value = fields[field]
        fields[field] = [stand_in if v in refs else v for v in value] if isinstance(value, list) else stand_in
    return validate(kind, fields, f"stage {stage.name}")
