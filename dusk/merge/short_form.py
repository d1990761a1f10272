"""A merge named by its models and method: the one config of `dusk merge A B --method M ...` (its flags are generated
from these fields) and of a recipe's `merge` stage. `merge_config()` turns it into the full `MergeConfig` that
`dusk.merge.run.run` takes; a mergekit-style YAML file goes straight to `MergeConfig` (`load_merge_config`).

    python -c "from dusk.merge.short_form import MergeShortForm as M; print(M(models=['a', 'b'], out='o'))"
"""

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dusk.merge.config import Dtype, MergeConfig, ParameterSetting, build_config, default_weight

NEEDS_T = {"slerp": "the position between the models (0 = the base, 1 = the other)", "nearswap": "the distance"}
FIRST_IS_BASE = ("slerp", "nearswap", "arcee_fusion")  # two models and no base: the first is the base


def _numbers(value: object) -> object:
    """`--weights 0.5,0.5` (or a list of such strings) as floats; anything else is left to the field's type."""
    parts = [value] if isinstance(value, str) else value
    if not isinstance(parts, list | tuple) or not all(isinstance(part, str) for part in parts):
        return value
    texts = [text.strip() for part in parts for text in part.split(",")]
    try:
        return tuple(float(text) for text in texts)
    except ValueError as exc:
        shown = ",".join(parts)
        raise ValueError(f"{shown!r}: expected comma-separated numbers such as 0.5,0.5") from exc


def _yaml_text(value: object) -> object:
    """A parameters value given as YAML text on the command line (`--parameters '{lambda: 0.5}'`), parsed."""
    if not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML ({getattr(exc, 'problem', None) or exc})") from exc


class MergeShortForm(BaseModel):
    """Models, method and weights: `dusk merge MODEL MODEL ... --method M` and the recipe's merge stage."""

    model_config = ConfigDict(extra="forbid")
    models: list[str] = Field(
        min_length=1, description="the models to merge (stages, built-in names or dirs); or one mergekit-style YAML"
    )
    method: str = Field("linear", description="merge method: linear, ties, slerp, ... (the list: dusk merge --help)")
    weights: str | tuple[float, ...] | None = Field(  # str: the flag's text, made a tuple by _weights
        None, description="comma-separated weight per model (default 1/n for linear, 1 for other weighted methods)"
    )
    base_model: str | None = Field(
        None, description="base model of task vectors (ties, dare_*, della*, slerp, ...): a stage or model"
    )
    density: float | None = Field(None, description="fraction of each task vector kept, in (0, 1] (every model)")
    t: float | None = Field(None, description="slerp position (0 = base, 1 = other); nearswap distance")
    parameters: str | dict[str, ParameterSetting] | None = Field(
        None, description="global parameters as YAML, e.g. '{lambda: 0.5}' (t, lambda, normalize, ...)"
    )
    model_parameters: str | list[dict[str, ParameterSetting]] | None = Field(
        None, description="per-model parameters as YAML, one mapping per model, e.g. '[{density: 0.5}, {}]'"
    )
    dtype: Dtype | None = Field(None, description="cast inputs to this dtype before merging")
    out_dtype: Dtype | None = Field(None, description="dtype of the written tensors (default: the merge's)")
    shard_size: str = Field("2GiB", description="maximum size of one safetensors shard")
    seed: int = Field(0, ge=0, lt=2**32, description="random seed of DARE, DELLA and Arcee Fusion sampling")
    out: Path = Field(description="output model directory (created atomically)")
    force: bool = Field(False, description="replace an existing output directory")

    _weights = field_validator("weights", mode="before")(classmethod(lambda cls, value: _numbers(value)))
    _yaml = field_validator("parameters", "model_parameters", mode="before")(
        classmethod(lambda cls, value: _yaml_text(value))
    )

    @field_validator("weights")
    @classmethod
    def _some_weights(cls, value: str | tuple[float, ...] | None) -> tuple[float, ...] | None:
        if value is not None and not value:
            raise ValueError("names no weight; give one per model, such as 0.5,0.5")
        return value

    @model_validator(mode="after")
    def _check(self) -> "MergeShortForm":
        from dusk.merge.methods import get_method

        get_method(self.method)  # unknown methods list the known ones
        count = len(self.models)
        if self.weights is not None and len(self.weights) != count:
            raise ValueError(
                f"weights (--weights): {len(self.weights)} value(s) for {count} model(s); give one weight per model"
            )
        if self.model_parameters is not None and len(self.model_parameters) != count:
            raise ValueError(f"model_parameters has {len(self.model_parameters)} entries for {count} models")
        both = [i for i, params in enumerate(self.model_parameters or []) if "weight" in params]
        if self.weights is not None and both:
            raise ValueError(
                f"model_parameters[{both[0]}] sets 'weight' and so does weights; give each model's weight in one "
                "place (weights: [...] or model_parameters' weight)"
            )
        if self.method in NEEDS_T and self.t is None and "t" not in (self.parameters or {}):
            raise ValueError(f"--method {self.method} needs --t (t in a recipe's parameters), {NEEDS_T[self.method]}")
        return self

    def is_config_file(self) -> bool:
        """True when the one input is a mergekit-style YAML config rather than a model."""
        return len(self.models) == 1 and Path(self.models[0]).suffix in (".yaml", ".yml")

    def merge_config(self, where: str = "dusk merge") -> MergeConfig:
        """The full MergeConfig: each model's weight (given, or the method's default) and density in its
        parameters, t among the global parameters, the first of two models as the base where the method needs one."""
        entries = []
        for index, model in enumerate(self.models):
            params: dict[str, Any] = dict(self.model_parameters[index]) if self.model_parameters else {}
            weight = self.weights[index] if self.weights else default_weight(self.method, len(self.models))
            if weight is not None and "weight" not in params:
                params["weight"] = weight
            if self.density is not None:
                params.setdefault("density", self.density)
            entries.append({"model": model, "parameters": params or None})
        parameters = dict(self.parameters or {})
        if self.t is not None:
            parameters["t"] = self.t
        base = self.base_model
        if base is None and self.method in FIRST_IS_BASE and len(self.models) == 2:
            base = self.models[0]
        data = {
            "merge_method": self.method, "base_model": base, "models": entries, "parameters": parameters or None,
            "dtype": self.dtype, "out_dtype": self.out_dtype, "out": self.out, "force": self.force,
            "shard_size": self.shard_size, "seed": self.seed,
        }  # fmt: skip
        return build_config(data, where)
