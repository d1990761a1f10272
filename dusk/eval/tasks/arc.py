"""ARC (AI2 Reasoning Challenge): 25-shot from train, `Question: {q}\\nAnswer:` / ` {choice}`, acc_norm.

python -c "from dusk.eval.tasks.arc import TASKS; print([t.name for t in TASKS])"
"""

from dusk.eval.tasks.base import Task


def _text(doc: dict) -> str:
    return f"Question: {doc['question']}\nAnswer:"


def _choices(doc: dict) -> list[str]:
    return list(doc["choices"]["text"])


def _gold(doc: dict) -> int:
    # lm-eval 0.4: choices.label.index(answerKey); numeric labels (1-4) index the same way as letters
    return doc["choices"]["label"].index(doc["answerKey"])


def _target(doc: dict) -> str:
    return _choices(doc)[_gold(doc)]


def arc_task(name: str) -> Task:
    return Task(
        name=name,
        dataset=name,
        split="test",
        fewshot_split="train",
        num_fewshot=25,
        sampler="random",
        output="choice",
        text=_text,
        choices=_choices,
        gold=_gold,
        target=_target,
        metrics=("acc_norm", "acc"),
    )


TASKS = (arc_task("arc_challenge"), arc_task("arc_easy"))
