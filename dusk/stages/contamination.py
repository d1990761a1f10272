"""The `contamination` stage kind: a model against a reference on benchmark items (the paper's Appendix C) and
Min-K% Prob (dusk contamination).

    python -c "from dusk.stages.contamination import CONTAMINATION; print(CONTAMINATION.inputs)"
"""

from pathlib import Path
from typing import Any

from dusk.stages.adapters import set_out
from dusk.stages.evaluate import split_task_list
from dusk.stages.kind import StageKind
from dusk.stages.results import contamination_result


def _contamination_data_files(cfg: Any) -> list[Path]:
    """The benchmark files whose items the test scores."""
    from dusk.contamination.items import expand_task_names
    from dusk.contamination.report import data_hashes

    return [Path(path) for path in data_hashes(expand_task_names(list(cfg.tasks)))]


def _contamination_schema() -> type:
    from dusk.contamination.config import ContaminationConfig

    return ContaminationConfig


def _contamination_run(cfg: Any) -> Path:
    from dusk.contamination.run import run

    run(cfg)
    return cfg.out


CONTAMINATION = StageKind(
    name="contamination",
    summary="contamination test of a model against a reference (paper's Appendix C) and Min-K% Prob",
    schema=_contamination_schema,
    run=_contamination_run,
    prepare=set_out,
    collect=contamination_result,
    inputs=("model", "reference"),
    data_files=_contamination_data_files,
    normalize=split_task_list,
    artifact="eval",
)
