"""The `upscale` stage kind: Depth Up-Scaling (dusk upscale), SOLAR's `model` + `drop` or mergekit-style `slices`.

python -c "from dusk.stages.upscale import UPSCALE; print(list(UPSCALE.schema().model_fields))"
"""

import functools
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dusk.stages.kind import StageKind, StagePaths
from dusk.stages.results import model_result


@functools.cache
def _upscale_schema() -> type:
    from dusk.models.upscale import OutputDtype, Slice

    class UpscaleStage(BaseModel):
        """A DUS stage: SOLAR's `model` + `drop`, or general `slices`."""

        model_config = ConfigDict(extra="forbid")
        model: str | None = Field(None, description="model to up-scale with `drop`: a stage, built-in name or dir")
        drop: int | None = Field(None, ge=0, description="SOLAR's m: layers [0, n-m) of one copy + [m, n) of another")
        slices: list[Slice] | None = Field(None, description="mergekit-style layer ranges to stack (instead of drop)")
        dtype: OutputDtype | None = Field(None, description="cast weights to this dtype (default: keep, bit for bit)")
        shard_size: str = Field("2GiB", description="maximum size of one safetensors shard")

        @model_validator(mode="after")
        def _one_form(self) -> "UpscaleStage":
            if (self.slices is None) == (self.drop is None) or (self.drop is not None and self.model is None):
                raise ValueError("give either `model` and `drop` (SOLAR's recipe) or `slices`")
            return self

    return UpscaleStage


def _upscale_prepare(fields: Any, paths: StagePaths, _resume: bool) -> Any:
    from dusk.models import upscale

    out = paths.out
    if fields.slices is not None:
        return upscale.UpscaleConfig(
            slices=fields.slices, out=out, force=True, dtype=fields.dtype, shard_size=fields.shard_size
        )
    return upscale.config_for_drop(fields.model, fields.drop, out, True, fields.dtype, fields.shard_size)


def _upscale_run(cfg: Any) -> Path:
    from dusk.models.upscale import run

    return run(cfg)


UPSCALE = StageKind(
    name="upscale",
    summary="Depth Up-Scaling: SOLAR's `drop` or general `slices` (dusk upscale)",
    schema=_upscale_schema,
    run=_upscale_run,
    prepare=_upscale_prepare,
    collect=model_result,
)
