"""HellaSwag: 10-shot, `{activity_label}: {ctx}` / ` {ending}`, acc_norm, on the 6-line validation file.

The local file has no train split, so the shots come from the validation pool minus the scored item (what
lm-eval does when the few-shot split is the scored split). Its contexts were cleaned by llama.cpp's extractor, which
kept the original `ctx` (the first letter of `ctx_b` is not capitalised as lm-eval does); the harness's cleanup
below is applied again so tags and double spaces it would remove are removed (it changes 14 of 10042 items).

python -c "from dusk.eval.tasks.hellaswag import preprocess; print(preprocess(' a [title] b  [step] c'))"
"""

import re

from dusk.eval.tasks.base import Task

_TAG = re.compile(r"\[.*?\]")


def preprocess(text: str) -> str:
    """lm-eval's HellaSwag cleanup: strip, ` [title]` -> `. `, drop `[...]` tags, collapse double spaces (once)."""
    text = text.strip().replace(" [title]", ". ")
    return _TAG.sub("", text).replace("  ", " ")


def process(docs: list[dict]) -> list[dict]:
    return [
        {"query": preprocess(d["query"]), "choices": [preprocess(c) for c in d["choices"]], "label": d["label"]}
        for d in docs
    ]


def _target(doc: dict) -> str:
    return doc["choices"][doc["label"]]


TASKS = (
    Task(
        name="hellaswag",
        dataset="hellaswag",
        split="validation",
        fewshot_split=None,
        num_fewshot=10,
        sampler="random",
        output="choice",
        text=lambda doc: doc["query"],
        choices=lambda doc: list(doc["choices"]),
        gold=lambda doc: doc["label"],
        target=_target,
        metrics=("acc_norm", "acc"),
        process=process,
        harness_drops_scored_doc=True,
    ),
)
