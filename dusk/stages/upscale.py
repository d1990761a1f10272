"""The `upscale` stage kind: Depth Up-Scaling (dusk upscale). Its fields are `dusk upscale`'s, from the one config
`dusk.models.upscale_config.UpscaleConfig`: `model` + `drop` (m, or auto + `layers`), `expand`, `blend`, or `slices`.

python -c "from dusk.stages.upscale import UPSCALE; print(list(UPSCALE.schema().model_fields))"
"""

from pathlib import Path
from typing import Any

from dusk.errors import DuskError
from dusk.stages.kind import StageKind, StagePaths
from dusk.stages.results import model_result


def _upscale_schema() -> type:
    from dusk.models.upscale_config import UpscaleConfig

    return UpscaleConfig


def _no_scan(raw: dict) -> dict:
    """A stage writes a model: the measure-only `scan` is the command's (dusk upscale MODEL --scan)."""
    if raw.get("scan"):
        raise DuskError("field scan: a stage writes a model; to only measure, run `dusk upscale MODEL --scan --out F`")
    return raw


def _upscale_prepare(cfg: Any, paths: StagePaths, _resume: bool) -> Any:
    """The config written into the stage's artifact directory, its model form resolved into slices (a scan runs for
    drop: auto)."""
    from dusk.models.upscale import resolve

    return resolve(cfg.model_copy(update={"out": paths.out, "force": True}))


def _upscale_run(cfg: Any) -> Path:
    from dusk.models.upscale import run

    return run(cfg)


UPSCALE = StageKind(
    name="upscale",
    summary="Depth Up-Scaling: SOLAR's `drop` (m or auto), `expand`, `blend`, or general `slices` (dusk upscale)",
    schema=_upscale_schema,
    run=_upscale_run,
    prepare=_upscale_prepare,
    collect=model_result,
    normalize=_no_scan,
)
