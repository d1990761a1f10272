"""What a benchmark is, as data: where its items come from, how one is turned into a prompt, and how it is scored.

Each task module (arc.py, hellaswag.py, ...) builds `Task` values from these pieces; `registry.py` collects them.

    python -c "from dusk.eval.tasks import get_task; print(get_task('arc_challenge'))"
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from dusk.eval.requests import GenerationRequest, LoglikelihoodRequest

Output = Literal["choice", "partial", "generate"]
Sampler = Literal["random", "first_n"]
Mode = Literal["harness", "leaderboard"]
MODES: tuple[Mode, ...] = ("harness", "leaderboard")
TARGET_DELIMITER = " "
FEWSHOT_DELIMITER = "\n\n"


@dataclass(frozen=True)
class Task:
    """One benchmark (or one MMLU subject), declared as data plus a few small functions of a record."""

    name: str  # registry name, as lm-evaluation-harness names the task (arc_challenge, mmlu_anatomy, ...)
    dataset: str  # dataset name for benchmark_docs.load_docs
    split: str  # the scored split
    fewshot_split: str | None  # split the shots come from; None = the scored split (minus the scored item)
    num_fewshot: int  # shots per prompt (the Open LLM Leaderboard's counts)
    sampler: Sampler  # "random" (seeded draws) or "first_n" (the first k of the few-shot split, in order)
    output: Output  # "choice": choices as continuations; "partial": choices in the context; "generate"
    text: Callable[[dict], str]  # the question part of the prompt (doc_to_text)
    choices: Callable[[dict], list[str]]  # choice strings, without the target delimiter (doc_to_choice)
    gold: Callable[[dict], int]  # index of the correct choice (generate tasks: unused, 0)
    target: Callable[[dict], str]  # answer text of a few-shot example (default: its gold choice)
    metrics: tuple[str, ...]  # metric names computed per item; the first is the headline
    description: str = ""  # text before the shots (MMLU's subject line, with its blank line)
    process: Callable[[list[dict]], list[dict]] = lambda docs: docs  # per-split cleanup (HellaSwag's preprocess)
    stop: dict[str, tuple[str, ...]] = field(default_factory=dict)  # generate tasks: stop sequences per mode
    harness_drops_scored_doc: bool = False  # lm-eval 0.4 draws k+1 and drops the scored doc (fewshot == test split)
    group: str | None = None  # group this task belongs to (mmlu)

    @property
    def headline(self) -> str:
        return self.metrics[0]


def shot_text(task: Task, doc: dict) -> str:
    """One solved example: question, target delimiter, answer, few-shot delimiter."""
    return task.text(doc) + TARGET_DELIMITER + task.target(doc) + FEWSHOT_DELIMITER


def fewshot_prefix(task: Task, shots: list[dict]) -> str:
    """Description then the solved examples: everything before the scored item's own text."""
    return task.description + "".join(shot_text(task, shot) for shot in shots)


def loglikelihood_requests(task: Task, doc: dict, shots: list[dict]) -> list[LoglikelihoodRequest]:
    """One (context, continuation) pair per choice, as lm-evaluation-harness builds them."""
    prefix = fewshot_prefix(task, shots)
    if task.output == "partial":
        continuation = TARGET_DELIMITER + task.target(doc)
        return [LoglikelihoodRequest(prefix + choice, continuation) for choice in task.choices(doc)]
    context = prefix + task.text(doc)
    return [LoglikelihoodRequest(context, TARGET_DELIMITER + choice) for choice in task.choices(doc)]


def generation_request(task: Task, doc: dict, shots: list[dict], mode: Mode, max_new_tokens: int) -> GenerationRequest:
    return GenerationRequest(fewshot_prefix(task, shots) + task.text(doc), task.stop[mode], max_new_tokens)


def gold_choice(doc: dict, task_choices: Callable[[dict], list[str]], gold: Callable[[dict], int]) -> str:
    return task_choices(doc)[gold(doc)]
