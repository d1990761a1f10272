"""The `eval` stage kind: score a model on H6 tasks (dusk eval); its numbers fill the report's tables.

python -c "from dusk.stages.evaluate import EVAL; print(EVAL.normalize({'tasks': 'arc_challenge, gsm8k'}))"
"""

from pathlib import Path
from typing import Any

from dusk.stages.adapters import set_out
from dusk.stages.kind import StageKind
from dusk.stages.results import eval_result


def split_task_list(raw: dict) -> dict:
    """The recipe shorthand `tasks: a, b` (one comma-separated string) as the list ["a", "b"]."""
    if isinstance(raw.get("tasks"), str):
        raw["tasks"] = [name.strip() for name in raw["tasks"].split(",") if name.strip()]
    return raw


def _eval_data_files(cfg: Any) -> list[Path]:
    """The benchmark files the evaluated tasks read (their scored split and, with few-shot, the few-shot split)."""
    from dusk.data.benchmarks import source_file
    from dusk.eval.tasks import expand_tasks, get_task

    files = set()
    for name in expand_tasks(list(cfg.tasks)):
        task = get_task(name)
        files.add(source_file(task.dataset, task.split))
        if task.fewshot_split and task.num_fewshot:
            files.add(source_file(task.dataset, task.fewshot_split))
    return sorted(files)


def _eval_schema() -> type:
    from dusk.eval.run import EvalConfig

    return EvalConfig


def _eval_run(cfg: Any) -> Path:
    from dusk.eval.run import run

    run(cfg)
    return cfg.out


EVAL = StageKind(
    name="eval",
    summary="score a model on H6 tasks (dusk eval); its numbers fill the report's tables",
    schema=_eval_schema,
    run=_eval_run,
    prepare=set_out,
    collect=eval_result,
    data_files=_eval_data_files,
    normalize=split_task_list,
    artifact="eval",
)
