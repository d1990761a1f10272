"""The task registry: every benchmark task by name, and the groups `h6` and `mmlu`; unknown names list the known.

python -c "from dusk.eval.tasks.registry import expand_tasks; print(expand_tasks(['h6'])[:3])"
"""

import dusk.eval.tasks.arc as arc
import dusk.eval.tasks.gsm8k as gsm8k
import dusk.eval.tasks.hellaswag as hellaswag
import dusk.eval.tasks.mmlu as mmlu
import dusk.eval.tasks.truthfulqa as truthfulqa
import dusk.eval.tasks.winogrande as winogrande
from dusk.errors import DuskError
from dusk.eval.tasks.base import Task
from dusk.h6 import H6_TASKS

H6 = H6_TASKS


def _build(modules: tuple) -> dict[str, Task]:
    registry: dict[str, Task] = {}
    for module in modules:
        for task in module.TASKS:
            if task.name in registry:
                raise DuskError(f"task {task.name!r} is registered twice")
            registry[task.name] = task
    return registry


TASKS: dict[str, Task] = _build((arc, hellaswag, mmlu, truthfulqa, winogrande, gsm8k))
GROUPS: dict[str, tuple[str, ...]] = {
    "mmlu": tuple(task.name for task in mmlu.TASKS),
    "h6": H6,
}


def known_names() -> list[str]:
    return [*GROUPS, *(name for name in TASKS if not name.startswith("mmlu_")), "mmlu_<subject> (57)"]


def get_task(name: str) -> Task:
    """The task called `name`, or an error listing the known tasks and groups."""
    if name not in TASKS:
        raise DuskError(f"unknown task {name!r}; known: {', '.join(known_names())}")
    return TASKS[name]


def expand_tasks(names: list[str]) -> list[str]:
    """Task and group names -> task names, groups expanded (h6 -> ..., mmlu -> its 57 subjects), duplicates dropped."""
    out: list[str] = []
    for name in names:
        if name in GROUPS:
            out.extend(expand_tasks(list(GROUPS[name])))
        else:
            get_task(name)
            out.append(name)
    return list(dict.fromkeys(out))
