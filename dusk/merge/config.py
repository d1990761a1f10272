"""The merge config: mergekit-style YAML (merge_method, base_model, models or slices, parameters, dtype) as pydantic.

A parameter value is a scalar, a gradient list (interpolated over a slice's layers: layer i of n gets
t = i / (n - 1) and the value at position t * (len - 1), linearly), or a list of `{filter: NAME, value: ...}`
conditions where the first whose filter is a substring of the tensor name (or has no filter, or `*`) applies.

    dusk merge merge.yaml --out runs/merged
"""

import logging
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from dusk.errors import DuskError
from dusk.models.shard_size import ShardSize
from dusk.models.upscale_config import SliceSource

log = logging.getLogger(__name__)

Scalar = bool | int | float | str
ScalarOrGradient = Scalar | list[Scalar]
Dtype = Literal["float32", "bfloat16", "float16", "float64"]


class Condition(BaseModel):
    """A parameter value applied to tensors whose name contains `filter` (all tensors when omitted or `*`)."""

    model_config = ConfigDict(extra="forbid")
    value: ScalarOrGradient = Field(description="scalar or gradient list")
    filter: str | None = Field(None, description="substring of the tensor name, `*` or omitted for all")


ParameterSetting = Condition | list[Condition] | ScalarOrGradient
Parameters = dict[str, ParameterSetting]


class ModelEntry(BaseModel):
    """One input model of a `models:` merge and its own parameters (weight, density, ...)."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(description="built-in name, model directory, .gguf file or hub id (org/name[@rev])")
    parameters: Parameters | None = Field(None, description="per-model parameters")


class MergeSliceSource(SliceSource):
    """A slice source (one model's half-open layer range, as DUS stacks them) with its own merge parameters."""

    parameters: Parameters | None = Field(None, description="per-model parameters")


class OutputSlice(BaseModel):
    """A block of output layers: the sources' layer ranges (all of one length) merged layer by layer."""

    model_config = ConfigDict(extra="forbid")
    sources: list[MergeSliceSource] = Field(min_length=1, description="models and layer ranges merged into this block")
    base_model: str | None = Field(None, description="base model for this slice (default: the global one)")
    parameters: Parameters | None = Field(None, description="parameters for this slice")


class MergeConfig(BaseModel):
    """Everything `dusk merge` needs: method, inputs, parameters, and where and how to write the result."""

    model_config = ConfigDict(extra="forbid")
    merge_method: str = Field(description="a merge method: `dusk merge --help` lists them (mergekit 0.1.5's set)")
    base_model: str | None = Field(None, description="model the task vectors are taken from (ties, slerp, ...)")
    models: list[ModelEntry] | None = Field(None, description="models merged whole, with their parameters")
    slices: list[OutputSlice] | None = Field(None, description="output layer blocks (instead of models)")
    parameters: Parameters | None = Field(None, description="global parameters (normalize, lambda, t, ...)")
    dtype: Dtype | None = Field(None, description="cast inputs to this dtype before merging")
    out_dtype: Dtype | None = Field(None, description="dtype of the written tensors (default: the merge's)")
    tokenizer_source: str | None = Field(None, description="whose tokenizer to copy: base or a model (default base)")
    out: Path = Field(description="output model directory (created atomically)")
    force: bool = Field(False, description="replace an existing output directory")
    shard_size: ShardSize = Field("2GiB", description="maximum size of one safetensors shard")
    seed: int = Field(0, ge=0, lt=2**32, description="random seed of DARE/DELLA drops (same seed, same output)")

    @model_validator(mode="after")
    def _check(self) -> "MergeConfig":
        from dusk.merge.methods import get_method

        method = get_method(self.merge_method)
        if (self.models is None) == (self.slices is None):
            raise ValueError("give exactly one of 'models' or 'slices'")
        if not (self.models or self.slices):
            raise ValueError("'models' or 'slices' is empty")
        known = set(method.param_names)
        unused: dict[str, list[str]] = {}
        for where, params in self.parameter_scopes():
            for name, setting in (params or {}).items():
                if name not in known:
                    unused.setdefault(name, []).append(where)
                    continue
                check_setting(f"{where}.{name}", name, setting, method.param(name).kind, method.name)
        for name, places in unused.items():
            log.warning(
                "%s: parameter %r is not used by merge method %s (ignored, as mergekit does); its parameters: %s",
                ", ".join(places), name, method.name, ", ".join(sorted(known)) or "none",
            )  # fmt: skip
        return self

    def parameter_scopes(self) -> list[tuple[str, Parameters | None]]:
        """Every place parameters can be set, with a name for error messages."""
        scopes: list[tuple[str, Parameters | None]] = [("parameters", self.parameters)]
        for i, entry in enumerate(self.models or []):
            scopes.append((f"models[{i}] ({entry.model}).parameters", entry.parameters))
        for i, item in enumerate(self.slices or []):
            scopes.append((f"slices[{i}].parameters", item.parameters))
            scopes += [(f"slices[{i}].sources[{j}].parameters", s.parameters) for j, s in enumerate(item.sources)]
        return scopes


def _leaves(setting: Any) -> list[Any]:
    if isinstance(setting, Condition):
        return _leaves(setting.value)
    if isinstance(setting, list):
        return [leaf for item in setting for leaf in _leaves(item)]
    return [setting]


def check_setting(where: str, name: str, setting: Any, kind: Any, method: str = "") -> None:
    """Every value a setting can produce must have the parameter's type; densities must lie in (0, 1]."""
    adapter = TypeAdapter(kind)
    for leaf in _leaves(setting):
        try:
            value = adapter.validate_python(leaf)
        except ValidationError as exc:
            raise ValueError(f"{where}: {leaf!r} is not a valid {getattr(kind, '__name__', kind)}") from exc
        check_value(where, name, value, method)


# Parameters whose values must lie in a range (besides being finite), with what the range means.
RANGES = {
    "density": (lambda v: 0 < v <= 1, "outside (0, 1] (the fraction of the task vector kept)"),
    "t": (lambda v: 0 <= v <= 1, "outside [0, 1] (0 = the base model, 1 = the other model)"),
}
RANGED_FOR = {"t": ("slerp",)}  # parameters whose range applies to some methods only (nearswap's t is a distance)


def check_value(where: str, name: str, value: Any, method: str = "") -> None:
    """A numeric parameter value must be finite (NaN or infinity would make every output weight NaN) and in range."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    if not math.isfinite(value):
        raise ValueError(f"{where}: {name} {value} is not a finite number")
    ranged = name in RANGES and method in RANGED_FOR.get(name, (method,))
    if ranged and not RANGES[name][0](value):
        raise ValueError(f"{where}: {name} {value} is {RANGES[name][1]}")


def evaluate_setting(tensor_name: str, setting: Any, t: float, kind: Any) -> Any:
    """The value of a setting for one tensor at layer position t in [0, 1]; None when no condition matches."""
    validate = TypeAdapter(kind).validate_python
    if isinstance(setting, Condition):
        setting = [setting]
    if not isinstance(setting, list):
        return validate(setting)
    if not setting:
        return None
    if all(not isinstance(item, Condition) for item in setting):
        values = [validate(item) for item in setting]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            return values[int(t * (len(values) - 1))]
        scaled = t * (len(values) - 1)
        low = int(scaled)
        high = min(len(values) - 1, low + 1)
        frac = scaled - low
        return validate((1 - frac) * values[low] + frac * values[high])
    for condition in setting:
        if condition.filter in (None, "*") or (tensor_name and condition.filter in tensor_name):
            return evaluate_setting(tensor_name, condition.value, t, kind)
    return None


def yaml_error(path: Path, exc: yaml.YAMLError) -> DuskError:
    """One line naming the file, line and column of a YAML syntax error."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return DuskError(f"{path}: not valid YAML ({problem})")
    return DuskError(f"{path}:{mark.line + 1}:{mark.column + 1}: not valid YAML: {problem} (line {mark.line + 1}, "
                     f"column {mark.column + 1})")  # fmt: skip


def validation_message(exc: ValidationError) -> str:
    """Pydantic's first error as one line: the field's path, what is wrong, and the value given."""
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = f"unknown field {error['loc'][-1]!r} (check its spelling; the fields are listed in docs/merge.md)"
    elif error["type"] != "value_error" and isinstance(error.get("input"), str | int | float | bool):
        message += f" (got {error['input']!r})"
    return f"{where}: {message}" if where else message


def load_merge_config(path: Path, out: Path, force: bool = False, shard_size: str = "2GiB", **extra: Any):
    """Read a mergekit-style YAML merge config into a MergeConfig (errors name the file, line and field)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise DuskError(f"{path}: cannot read ({exc})") from exc
    except yaml.YAMLError as exc:
        raise yaml_error(path, exc) from exc
    if not isinstance(data, dict) or "merge_method" not in data:
        raise DuskError(f"{path}: expected a mapping with 'merge_method' and 'models' or 'slices'")
    for unsupported in ("modules", "tokenizer", "chat_template"):
        if unsupported in data:
            raise DuskError(f"{path}: mergekit's {unsupported!r} is not supported by dusk merge")
    if "tokenizer_source" in data and data["tokenizer_source"] is not None:
        data["tokenizer_source"] = str(data["tokenizer_source"])
    return build_config(dict(data, out=out, force=force, shard_size=shard_size, **extra), str(path))


def build_config(data: dict, where: str) -> MergeConfig:
    """Validate a config dict, turning pydantic's errors into one DuskError naming the field."""
    try:
        return MergeConfig.model_validate(data)
    except DuskError as exc:
        raise DuskError(f"{where}: {exc}") from exc
    except ValidationError as exc:
        raise DuskError(f"{where}: {validation_message(exc)}") from exc


def default_weight(method: str, count: int) -> float | None:
    """The weight a short form gives each of `count` models when none is given (`dusk merge A B`, a recipe's merge
    stage): 1/count for linear, 1 for the other methods with a `weight` parameter, none for methods without one
    (karcher, model_stock, slerp, ...: they would warn that it is unused)."""
    from dusk.merge.methods import get_method

    if "weight" not in get_method(method).param_names:
        return None
    return 1.0 / count if method == "linear" else 1.0


def short_form_config(
    models: list[str],
    method: str,
    out: Path,
    weights: list[float] | None = None,
    base: str | None = None,
    density: float | None = None,
    t: float | None = None,
    **extra: Any,
) -> MergeConfig:
    """The MergeConfig of `dusk merge A B --method M [--weights w,w] [--base B] [--density D] [--t T]`."""
    if weights is not None and len(weights) != len(models):
        raise DuskError(f"--weights: {len(weights)} value(s) for {len(models)} model(s); give one weight per model")
    entries = []
    for index, model in enumerate(models):
        params: dict[str, Any] = {}
        weight = weights[index] if weights is not None else default_weight(method, len(models))
        if weight is not None:
            params["weight"] = weight
        if density is not None:
            params["density"] = density
        entries.append({"model": model, "parameters": params or None})
    data: dict[str, Any] = {"merge_method": method, "base_model": base, "models": entries, "out": out, **extra}
    if t is not None:
        data["parameters"] = {"t": t}
    return build_config(data, "dusk merge")
