"""The stage kinds a recipe can name: for each, its fields (a typed config), its run function, which of its fields
take earlier stages' artifacts, and how its result is read back for the results store.

A kind is one registry entry: adding a stage to dusk means one `StageKind` in a module of this package (one module
per stage family) and one line in `registry.py`. Stage modules are imported only when a kind is used, so
`dusk --help` stays fast.

    python -c "from dusk.stages import KINDS; print(sorted(KINDS))"
"""

from dusk.stages.data import DATA_FILE, MixJob, data_paths
from dusk.stages.kind import (
    PLACEHOLDER_OUT,
    RUNNER_FIELDS,
    FieldSpec,
    StageKind,
    StagePaths,
    coerce,
    dump_fields,
    field_specs,
    validate,
    with_runner_fields,
    with_values,
)
from dusk.stages.registry import KINDS, get_kind
from dusk.stages.results import eval_result, model_parameters, model_result, read_training_log

__all__ = [
    "DATA_FILE",
    "KINDS",
    "PLACEHOLDER_OUT",
    "RUNNER_FIELDS",
    "FieldSpec",
    "MixJob",
    "StageKind",
    "StagePaths",
    "coerce",
    "data_paths",
    "dump_fields",
    "eval_result",
    "field_specs",
    "get_kind",
    "model_parameters",
    "model_result",
    "read_training_log",
    "validate",
    "with_runner_fields",
    "with_values",
]
