"""The `merge` stage kind: merge whole models (dusk merge); the paper's "SFT v3+v4" is `method: linear` of two stages.

python -c "from dusk.stages.merge import MERGE; print(list(MERGE.schema().model_fields))"
"""

import functools
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dusk.stages.kind import StageKind, StagePaths
from dusk.stages.results import model_result


@functools.cache
def _merge_schema() -> type:
    from dusk.merge.config import Dtype, ParameterSetting
    from dusk.merge.methods import get_method

    class MergeStage(BaseModel):
        """A merge of whole models (the paper's "SFT v3+v4" is `method: linear` of two stages, equal weights)."""

        model_config = ConfigDict(extra="forbid")
        models: list[str] = Field(min_length=1, description="models to merge: stages, built-in names or dirs")
        method: str = Field("linear", description="a dusk merge method: linear, ties, slerp, ... (dusk merge --help)")
        weights: list[float] | None = Field(None, description="per-model weight (default 1/n for linear, else 1)")
        base_model: str | None = Field(None, description="base for task vectors (ties, slerp, ...): a stage or model")
        parameters: dict[str, ParameterSetting] | None = Field(None, description="global parameters (t, lambda..)")
        model_parameters: list[dict[str, ParameterSetting]] | None = Field(
            None, description="per-model parameters (density, ...), one mapping per model"
        )
        dtype: Dtype | None = Field(None, description="cast inputs to this dtype before merging")
        out_dtype: Dtype | None = Field(None, description="dtype of the written tensors")
        shard_size: str = Field("2GiB", description="maximum size of one safetensors shard")
        seed: int = Field(0, description="random seed of DARE's and DELLA's drops")

        @model_validator(mode="after")
        def _check(self) -> "MergeStage":
            get_method(self.method)  # unknown methods list the known ones
            for name, values in (("weights", self.weights), ("model_parameters", self.model_parameters)):
                if values is not None and len(values) != len(self.models):
                    raise ValueError(f"{name} has {len(values)} entries for {len(self.models)} models")
            both = [i for i, params in enumerate(self.model_parameters or []) if "weight" in params]
            if self.weights is not None and both:
                raise ValueError(
                    f"model_parameters[{both[0]}] sets 'weight' and so does weights; give each model's weight in one "
                    "place (weights: [...] or model_parameters' weight)"
                )
            return self

    return MergeStage


def _merge_prepare(fields: Any, paths: StagePaths, _resume: bool) -> Any:
    """The stage's fields as a dusk merge config: per-model weights folded into each model's parameters; without
    `weights`, models get the short form's default weight (1/n for linear, 1 for other methods with a weight
    parameter, none for methods without one) unless their `model_parameters` set it."""
    from dusk.merge.config import MergeConfig, default_weight

    entries = []
    for index, model in enumerate(fields.models):
        parameters = dict(fields.model_parameters[index]) if fields.model_parameters else {}
        weight = fields.weights[index] if fields.weights else default_weight(fields.method, len(fields.models))
        if weight is not None and "weight" not in parameters:
            parameters["weight"] = weight
        entries.append({"model": model, "parameters": parameters or None})
    return MergeConfig(
        merge_method=fields.method, base_model=fields.base_model, models=entries, parameters=fields.parameters,
        dtype=fields.dtype, out_dtype=fields.out_dtype, out=paths.out, force=True, shard_size=fields.shard_size,
        seed=fields.seed,
    )  # fmt: skip


def _merge_run(cfg: Any) -> Path:
    from dusk.merge.run import run

    return run(cfg)


MERGE = StageKind(
    name="merge",
    summary="merge models: linear average (the paper's v3+v4), TIES, DARE, SLERP... (dusk merge)",
    schema=_merge_schema,
    run=_merge_run,
    prepare=_merge_prepare,
    collect=model_result,
    inputs=("models", "base_model"),
)
