"""The one config of Depth Up-Scaling: `dusk upscale`'s flags (generated from these fields), the recipe's `upscale`
stage, and what `dusk.models.upscale.run` takes. Its forms, each checked here before anything is loaded:

    model + drop: m          SOLAR: layers [0, n-m) of the model, then [m, n) of a copy
    model + drop: auto + layers: L   the stacking with L layers a layer scan prefers
    model + expand: every:K   an identity-initialised copy after every K layers (also on top of a drop)
    slices                   mergekit-style half-open layer ranges (a list, or a YAML file with `slices:`)
    model + scan             only measure: the layer scan, written as JSON to `out`

`dusk.models.upscale.resolve` turns the model forms into slices (a scan runs for drop: auto).

    python -c "from dusk.models.upscale_config import UpscaleConfig as U; print(U(model='m', drop=8, out='o'))"
"""

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dusk.errors import DuskError
from dusk.models.shard_size import ShardSize
from dusk.yaml_file import read_yaml

OutputDtype = Literal["float32", "bfloat16", "float16"]


class SliceSource(BaseModel):
    """One model's half-open layer range [start, end)."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(description="built-in name, model directory, .gguf file or hub id (org/name[@rev])")
    layer_range: tuple[int, int] = Field(description="half-open range [start, end) of layer indices")


class Slice(BaseModel):
    """A block of output layers taken from one source (several sources would be a merge: see `dusk merge`)."""

    model_config = ConfigDict(extra="forbid")
    sources: list[SliceSource] = Field(description="the one model and layer range of this block")

    @field_validator("sources")
    @classmethod
    def _one_source(cls, sources: list[SliceSource]) -> list[SliceSource]:
        if len(sources) != 1:
            raise ValueError(f"a DUS slice takes exactly one source, got {len(sources)} (use `dusk merge` to merge)")
        return sources

    @property
    def source(self) -> SliceSource:
        return self.sources[0]


def _drop(value: object) -> object:
    """`--drop 8` (the flag's text) as the integer 8; `auto` stays."""
    if isinstance(value, str) and value != "auto":
        try:
            return int(value)
        except ValueError:
            raise ValueError("expected an integer m or auto") from None
    return value


class UpscaleConfig(BaseModel):
    """`dusk upscale` and the recipe's upscale stage: a model with `drop`/`expand`, or `slices`; where and how to
    write."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, description="model to up-scale: built-in name, directory, .gguf, hub id or a stage")
    drop: Annotated[str | int | None, BeforeValidator(_drop)] = Field(  # str: the flag's text, made int or "auto"
        None, description="SOLAR's m: keep [0, n-m) of one copy and [m, n) of another; auto: pick by a layer scan"
    )
    layers: int | None = Field(None, description="with drop auto: the output layer count")
    scan: bool = Field(False, description="only measure: print the layer scan and write it as JSON to --out")
    data: str | None = Field(None, description="calibration text of the scan and drop auto (default: tinyshakespeare)")
    samples: int | None = Field(None, description="calibration sequences of 128 tokens for the scan (default 8)")
    expand: str | None = Field(None, description="every:K: insert an identity-initialised copy after every K layers")
    blend: int | None = Field(None, description="cross-fade the K layers on each side of the seam of two slices")
    slices: Path | list[Slice] | None = Field(  # Path: a mergekit-style file, read into the list by _slices_file
        None, description="mergekit-style YAML file with `slices:` (half-open layer ranges; a recipe: the list)"
    )
    out: Path = Field(description="output model directory, created atomically (with scan: the JSON file)")
    force: bool = Field(False, description="replace an existing output")
    dtype: OutputDtype | None = Field(None, description="cast weights to this dtype (default: keep, bit for bit)")
    shard_size: ShardSize = Field("2GiB", description="maximum size of one safetensors shard")
    _record: dict = PrivateAttr(default_factory=dict)  # the scan and its choice, for dusk_upscale.json

    @property
    def record(self) -> dict:
        """What resolving the form found (drop auto: the scan, the chosen stacking and the runner-up)."""
        return self._record

    @model_validator(mode="before")
    @classmethod
    def _slices_file(cls, values: Any) -> Any:
        """`slices` given as a file: its `slices:` list, and its `dtype` unless one is given."""
        if isinstance(values, dict) and isinstance(values.get("slices"), str | Path):
            slices, dtype = read_slices_file(Path(values["slices"]))
            values = {**values, "slices": slices, "dtype": values.get("dtype") or dtype}
        return values

    @field_validator("drop")
    @classmethod
    def _drop_not_negative(cls, value: int | str | None, info: ValidationInfo) -> int | str | None:
        if isinstance(value, int) and value < 0:
            where = _drop_range(info.data.get("model"))
            raise ValueError(f"--drop {value}: must be {where}greater than or equal to 0, or auto")
        return value

    @model_validator(mode="after")
    def _one_form(self) -> "UpscaleConfig":
        if self.scan:
            given = {"--drop": self.drop, "--layers": self.layers, "--expand": self.expand, "--blend": self.blend,
                     "--slices": self.slices}  # fmt: skip
            ignored = [flag for flag, value in given.items() if value is not None]
            if ignored:
                raise ValueError(f"--scan only measures the model; it takes no {', '.join(ignored)}")
            if self.model is None:
                raise ValueError("--scan needs a model to measure (the MODEL argument)")
            return self
        if self.slices is not None and (self.model is not None or self.drop is not None or self.layers is not None):
            raise ValueError(
                "give either `model` with `drop` or `expand`, or `slices`: slices name their models and layer "
                "ranges, so drop the MODEL argument, --drop and --layers"
            )
        if self.slices is None and self.drop is None and self.expand is None:
            raise ValueError(
                "give either `model` with `drop` (SOLAR's m, or auto with `layers`) and/or `expand`, or `slices`; "
                "as flags: either MODEL --drop M, MODEL --drop auto --layers L, MODEL --expand every:K or --slices F"
            )
        if self.slices is None and self.model is None:
            raise ValueError(f"{'--drop' if self.drop is not None else '--expand'} needs a model (the MODEL argument)")
        if self.slices == []:
            raise ValueError("--slices: give at least one slice")
        self._check_options()
        return self

    def _check_options(self) -> None:
        """Option combinations that mean nothing."""
        if self.layers is not None and self.drop != "auto":
            raise ValueError(
                f"--layers {self.layers}: only used with --drop auto (it picks the stacking with that many layers)"
            )
        if self.blend is not None and self.drop is None and self.slices is None:
            raise ValueError(
                f"--blend {self.blend}: blends the seam of a stacking; give it with --drop M or --drop auto"
            )
        if self.blend is not None and self.blend < 1:
            raise ValueError(f"--blend {self.blend}: must be at least 1 (the layers on each side of the seam)")


def _drop_range(model: str | None) -> str:
    """For a bad --drop: the valid range, when the model's layer count is known without loading anything."""
    from dusk.models.io import known_layer_count

    n = known_layer_count(model) if model else None
    return "" if n is None else f"in [0, {n}) for a model with {n} layers: "


def read_slices_file(path: Path) -> tuple[list[Slice], str | None]:
    """A mergekit-style `slices:` YAML (optionally with `merge_method: passthrough` and `dtype`): its slices and
    dtype."""
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
        slices = TypeAdapter(list[Slice]).validate_python(data["slices"])
        dtype = TypeAdapter(OutputDtype | None).validate_python(data.get("dtype"))
    except ValidationError as exc:
        raise DuskError(f"{path}: invalid slices: {_messages(exc)}") from exc
    return slices, dtype


def _messages(exc: ValidationError) -> str:
    """A validation error as `where: message` items, without pydantic's links."""
    return "; ".join(
        f"{'.'.join(map(str, error['loc'])) or 'slices'}: {str(error['msg']).removeprefix('Value error, ')}"
        for error in exc.errors()
    )
