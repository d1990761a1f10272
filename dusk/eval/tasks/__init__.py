"""Benchmark tasks, one declarative module each, and the registry that finds them by name.

python -c "from dusk.eval.tasks import get_task; print(get_task('gsm8k').num_fewshot)"
"""

from dusk.eval.tasks.base import Task
from dusk.eval.tasks.registry import GROUPS, TASKS, expand_tasks, get_task

__all__ = ["GROUPS", "TASKS", "Task", "expand_tasks", "get_task"]
