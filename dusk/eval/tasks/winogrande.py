"""Winogrande: 5-shot from train_l, partial scoring (the option goes in the context, the rest is scored), acc.

Each choice's context is `sentence[:blank] + option`; both share the continuation ` {sentence after the blank}`.

python -c "from dusk.eval.tasks.winogrande import *; print(_choices(dict(sentence='A _ b.', option1='x', option2='y')))"
"""

from dusk.eval.tasks.base import Task


def _choices(doc: dict) -> list[str]:
    blank = doc["sentence"].index("_")
    return [doc["sentence"][:blank] + doc["option1"], doc["sentence"][:blank] + doc["option2"]]


def _gold(doc: dict) -> int:
    return {"1": 0, "2": 1}[str(doc["answer"])]


def _rest(doc: dict) -> str:
    return doc["sentence"][doc["sentence"].index("_") + 1 :].strip()


TASKS = (
    Task(
        name="winogrande",
        dataset="winogrande",
        split="validation",
        fewshot_split="train",  # train_l: the largest training size available here (train_xl is not)
        num_fewshot=5,
        sampler="random",
        output="partial",
        text=lambda doc: _choices(doc)[_gold(doc)],
        choices=_choices,
        gold=_gold,
        target=_rest,
        metrics=("acc",),
        harness_drops_scored_doc=True,
    ),
)
