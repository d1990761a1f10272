"""Few-shot draws that replay the harnesses' random generators exactly, so dusk's prompts equal theirs item by item.

harness (lm-evaluation-harness 0.4.x): one `random.Random(1234)` per task (`fewshot_random_seed`, set by
`simple_evaluate` through `task.set_fewshot_seed`); the scored docs are visited in split order (the first N with
`--limit N`; only the selected ones, in order, with a subset, as `--samples` does) and each visit draws
`rnd.sample(pool, k)`. When the task's few-shot split equals its test split (HellaSwag and Winogrande, where both
are unset) it draws k+1, drops the docs equal to the scored one and keeps the first k (re-drawing from the pool
without it if fewer than k remain). `first_n` (MMLU) takes the first k docs of the pool and draws nothing.

leaderboard (harness commit b281b09, the Open LLM Leaderboard v1): one `random.Random(42)` per task first shuffles
the scored docs (`--limit N` = the first N of that shuffle), then, visiting them in shuffled order, draws
`rnd.sample(train, k)`, or, for a task without a training split (HellaSwag here), `rnd.sample(pool, k + 1)` minus
the scored doc, first k. With a subset, the whole shuffled run is replayed and the subset's items keep the shots
they get in the full run.

    python -c "import random; from dusk.eval.fewshot import *; print(harness_draw(random.Random(1234), 100, 3))"
"""

import random
from collections.abc import Sequence

from dusk.eval.tasks.base import Mode, Task

HARNESS_FEWSHOT_SEED = 1234  # lm-eval 0.4.x fewshot_random_seed (also its numpy and torch seed; python's is 0)
LEADERBOARD_SEED = 42  # b281b09 evaluator: random.Random(); rnd.seed(42); rnd.shuffle(task_docs)

Plan = list[tuple[int, list[int]]]  # (index of the scored doc, indices of its shots in the pool), in visit order


def harness_draw(rnd: random.Random, pool_size: int, k: int) -> list[int]:
    """`rnd.sample(pool, k)` as indices (random.sample's choices depend only on the pool's length)."""
    return rnd.sample(range(pool_size), k)


def _draw_excluding(rnd: random.Random, pool: Sequence[dict], doc: dict, k: int, refill: bool) -> list[int]:
    drawn = [j for j in rnd.sample(range(len(pool)), k + 1) if pool[j] != doc][:k]
    if refill and len(drawn) < k:  # lm-eval 0.4: the pool held copies of the scored doc; draw again without them
        drawn = rnd.sample([j for j in range(len(pool)) if pool[j] != doc], k)
    return drawn


def _visit_order(mode: Mode, n_docs: int, limit: int | None, subset: Sequence[int] | None) -> tuple[list[int], set]:
    """Docs the harness visits (their draws advance the generator) and which of them are scored."""
    if mode == "harness":
        order = sorted(subset) if subset is not None else list(range(n_docs if limit is None else min(limit, n_docs)))
        return order, set(order)
    order = list(range(n_docs))
    random.Random(LEADERBOARD_SEED).shuffle(order)
    if subset is not None:
        return order, set(subset)
    order = order if limit is None else order[:limit]
    return order, set(order)


def plan_fewshot(
    task: Task,
    mode: Mode,
    docs: Sequence[dict],
    pool: Sequence[dict],
    limit: int | None = None,
    subset: Sequence[int] | None = None,
) -> Plan:
    """For each scored doc, in the harness's visit order, the pool indices of its few-shot examples."""
    rnd = random.Random(HARNESS_FEWSHOT_SEED)
    order, scored = _visit_order(mode, len(docs), limit, subset)
    if mode == "leaderboard":
        rnd = random.Random(LEADERBOARD_SEED)
        rnd.shuffle(list(range(len(docs))))  # the same generator shuffled the docs before any draw
    k = task.num_fewshot
    plan: Plan = []
    for index in order:
        if k == 0:
            shots: list[int] = []
        elif task.sampler == "first_n":
            shots = list(range(k))
        elif mode == "harness" and task.harness_drops_scored_doc:
            shots = _draw_excluding(rnd, pool, docs[index], k, refill=True)
        elif mode == "leaderboard" and task.fewshot_split is None:
            shots = _draw_excluding(rnd, pool, docs[index], k, refill=False)
        else:
            shots = harness_draw(rnd, len(pool), k)
        if index in scored:
            plan.append((index, shots))
    return plan
