"""The `upscale` stage kind: Depth Up-Scaling (dusk upscale): `model` + `drop` (m or auto + `layers`), `expand`,
`blend`, or mergekit-style `slices`; the fields are the flags of `dusk upscale`.

python -c "from dusk.stages.upscale import UPSCALE; print(list(UPSCALE.schema().model_fields))"
"""

import functools
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dusk.stages.kind import StageKind, StagePaths
from dusk.stages.results import model_result


@functools.cache
def _upscale_schema() -> type:
    from dusk.models.upscale import OutputDtype, Slice

    class UpscaleStage(BaseModel):
        """A DUS stage: SOLAR's `model` + `drop` (an m, or `auto` with `layers`), `expand`, `blend`, or `slices`."""

        model_config = ConfigDict(extra="forbid")
        model: str | None = Field(None, description="model to up-scale with `drop`: a stage, built-in name or dir")
        drop: int | Literal["auto"] | None = Field(
            None, description="SOLAR's m: layers [0, n-m) of one copy + [m, n) of another; auto: chosen by a scan"
        )
        layers: int | None = Field(None, description="with drop: auto, the output layer count")
        data: str | None = Field(None, description="calibration text of the scan for drop: auto (tinyshakespeare)")
        samples: int | None = Field(None, description="calibration sequences of 128 tokens for the scan (8)")
        expand: str | None = Field(None, description="every:K: an identity-initialised copy after every K layers")
        blend: int | None = Field(None, description="cross-fade the K layers on each side of the seam")
        slices: list[Slice] | None = Field(None, description="mergekit-style layer ranges to stack (instead of drop)")
        dtype: OutputDtype | None = Field(None, description="cast weights to this dtype (default: keep, bit for bit)")
        shard_size: str = Field("2GiB", description="maximum size of one safetensors shard")

        @field_validator("drop")
        @classmethod
        def _drop(cls, value: int | str | None) -> int | str | None:
            if isinstance(value, int) and value < 0:
                raise ValueError(f"drop {value}: must be greater than or equal to 0, or auto")
            return value

        @model_validator(mode="after")
        def _one_form(self) -> "UpscaleStage":
            by_model = self.drop is not None or self.expand is not None
            if (self.slices is None) == (not by_model) or (self.slices is None and self.model is None):
                raise ValueError(
                    "give either `model` with `drop` (SOLAR's m, or auto with `layers`) and/or `expand`, or `slices`"
                )
            if self.slices is not None and (self.model is not None or self.drop is not None or self.layers):
                raise ValueError("`slices` names its models and ranges; drop `model`, `drop` and `layers`")
            return self

    return UpscaleStage


def _upscale_prepare(fields: Any, paths: StagePaths, _resume: bool) -> Any:
    from dusk.models import upscale

    out = paths.out
    if fields.slices is not None:
        return upscale.UpscaleConfig(
            slices=fields.slices,
            out=out,
            force=True,
            dtype=fields.dtype,
            shard_size=fields.shard_size,
            expand=fields.expand,
            blend=fields.blend,
        )
    return upscale.config_for_model(
        fields.model,
        out,
        drop=fields.drop,
        layers=fields.layers,
        expand=fields.expand,
        blend=fields.blend,
        scan_data=fields.data,
        scan_samples=fields.samples,
        force=True,
        dtype=fields.dtype,
        shard_size=fields.shard_size,
    )


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
)
