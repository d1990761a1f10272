"""The texts the contamination test checks: one per benchmark item, question and correct answer in the task's
natural form, its 40% word prefix, and the seeded choice of which items to test.

| task | item text |
|---|---|
| arc_challenge | question + " " + the correct choice's text |
| hellaswag | `activity label: context` + " " + the correct ending |
| mmlu | question + " " + the correct choice's text (all 57 subjects pooled) |
| truthfulqa_mc2 | question + " " + the best (mc1-true) answer |
| winogrande | the sentence with its `_` blank filled by the correct option |
| gsm8k | question + " " + the full reference solution (with its `<<...>>` notes and `#### N` line) |

    DUSK_DATA_DIR=../shared/data python -c "from dusk.contamination.items import *; print(task_items('gsm8k')[0])"
"""

import math
import random
import re
from dataclasses import dataclass

from dusk.errors import DuskError
from dusk.h6 import DATASET_OF_TASK

# Task name (as in `dusk eval`) -> dataset name of `benchmark_docs.scored_items`.
DATASETS = DATASET_OF_TASK  # task name (as `dusk eval` spells it) -> benchmark data folder
GROUPS = {"h6": tuple(DATASETS)}


@dataclass(frozen=True)
class ContaminationItem:
    """One benchmark item as a single text: task name, its doc_id in the scored split, and the text."""

    task: str
    doc_id: str
    text: str


@dataclass(frozen=True)
class Split:
    """An item text cut after its first words: `prefix` + `rest` == the text (rest starts with the whitespace)."""

    prefix: str
    rest: str
    words: int
    prefix_words: int


def expand_task_names(names: list[str]) -> list[str]:
    """Task and group names (`h6`) -> task names in order, duplicates dropped; unknown names list the known ones."""
    out: list[str] = []
    for name in names:
        if name in GROUPS:
            out.extend(GROUPS[name])
        elif name in DATASETS:
            out.append(name)
        else:
            raise DuskError(f"contamination: unknown task {name!r}; known: {', '.join([*GROUPS, *DATASETS])}")
    return list(dict.fromkeys(out))


def natural_text(task: str, question: str, answer: str) -> str:
    """The item's text: the question with its correct answer, as a reader of the benchmark would see it."""
    if task == "winogrande":
        return question.replace("_", answer.strip(), 1).strip()
    return f"{question.strip()} {answer.strip()}"


def task_items(task: str) -> list[ContaminationItem]:
    """Every scored item of `task` as an ContaminationItem, in split order (reads `$DUSK_DATA_DIR`)."""
    from dusk.data.benchmarks import scored_items

    if task not in DATASETS:
        expand_task_names([task])  # raises the unknown-name error
    return [ContaminationItem(task, doc_id, natural_text(task, q, a)) for doc_id, q, a in scored_items(DATASETS[task])]


def select_items(items: list[ContaminationItem], n: int, seed: int) -> list[ContaminationItem]:
    """`n` items drawn without replacement by a `random.Random(seed)` shuffle (all of them if n >= len(items))."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    return [items[index] for index in order[:n]]


def split_prefix(text: str, ratio: float = 0.4, min_words: int = 5) -> Split | None:
    """Cut `text` after its first ceil(ratio * words) words (words = runs of non-space characters).

    None when the text is too short to test: fewer than `min_words` words, or nothing left after the prefix.
    """
    words = list(re.finditer(r"\S+", text))
    prefix_words = math.ceil(len(words) * ratio)
    if len(words) < min_words or prefix_words < 1 or prefix_words >= len(words):
        return None
    start, end = words[0].start(), words[prefix_words - 1].end()
    return Split(text[start:end], text[end:], len(words), prefix_words)
