"""The `merge` stage kind: merge whole models (dusk merge); the paper's "SFT v3+v4" is `method: linear` of two stages.
Its fields are `dusk merge`'s short form (`dusk.merge.short_form.MergeShortForm`): one config validates the recipe
stage and generates the command's flags.

python -c "from dusk.stages.merge import MERGE; print(list(MERGE.schema().model_fields))"
"""

from pathlib import Path
from typing import Any

from dusk.stages.kind import StageKind, StagePaths
from dusk.stages.results import model_result


def _merge_schema() -> type:
    from dusk.merge.short_form import MergeShortForm

    return MergeShortForm


def _merge_prepare(fields: Any, paths: StagePaths, _resume: bool) -> Any:
    """The stage's fields as the MergeConfig `dusk merge` would build: per-model weights folded into each model's
    parameters (given, or the method's default: 1/n for linear, 1 for other weighted methods, none otherwise)."""
    return fields.model_copy(update={"out": paths.out, "force": True}).merge_config("merge stage")


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
