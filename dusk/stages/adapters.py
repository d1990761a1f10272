"""The `prepare` of stages whose config is the recipe's fields plus the output directory.

python -c "from dusk.stages.adapters import set_out; print(set_out.__doc__)"
"""

from typing import Any

from dusk.stages.kind import StagePaths, with_runner_fields


def set_out(fields: Any, paths: StagePaths, _resume: bool) -> Any:
    """A `prepare` for stages whose config is the recipe's fields plus the output directory (written with force)."""
    return with_runner_fields(fields, out=paths.out, force=True)
