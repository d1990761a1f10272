"""Small pieces the stage kinds share: a stage module's schema and run function imported only when a kind is used
(so `dusk --help` stays fast), and the `prepare` of stages that only need their output directory set.

    python -c "from dusk.stages.adapters import lazy_schema; print(lazy_schema('dusk.eval.harness', 'EvalConfig')())"
"""

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dusk.stages.kind import StagePaths, with_runner_fields


def lazy_schema(module: str, name: str) -> Callable[[], type]:
    """A `schema` that returns the class `name` of `module`, importing the module on first use."""

    def schema() -> type:
        return getattr(importlib.import_module(module), name)

    return schema


def lazy_run(module: str) -> Callable[[Any], Path]:
    """A `run` that calls `module.run(cfg)` and returns the artifact path it returns."""

    def run(cfg: Any) -> Path:
        return importlib.import_module(module).run(cfg)

    return run


def lazy_run_into_out(module: str) -> Callable[[Any], Path]:
    """A `run` that calls `module.run(cfg)` and returns `cfg.out` (stages whose artifact is a whole directory)."""

    def run(cfg: Any) -> Path:
        importlib.import_module(module).run(cfg)
        return cfg.out

    return run


def set_out(fields: Any, paths: StagePaths, _resume: bool) -> Any:
    """A `prepare` for stages whose config is the recipe's fields plus the output directory (written with force)."""
    return with_runner_fields(fields, out=paths.out, force=True)
