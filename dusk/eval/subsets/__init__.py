"""Fixed item subsets for CPU-sized runs: `tiny` = 100 items per task, drawn once with a seeded RNG, stored as doc ids.

The ids live in `tiny.json` next to this file, so a number computed on `--subset tiny` means the same items on
every machine. `draw_tiny` re-creates the draw from the split sizes (a test checks the shipped file against it).

    python -c "from dusk.eval.subsets import subset_ids; print(subset_ids('tiny', 'gsm8k')[:5])"
"""

import json
import random
from functools import cache
from pathlib import Path

from dusk.errors import DuskError

SUBSET_DIR = Path(__file__).parent
TINY_SEED = 20240101
TINY_SIZE = 100


def draw_tiny(sizes: dict[str, int], mmlu_sizes: dict[str, int]) -> dict[str, list[int]]:
    """100 doc ids per task (seeded, sorted); MMLU's 100 are drawn over all 57 subjects' test items together.

    `sizes`: scored-split size per non-MMLU task; `mmlu_sizes`: test size per subject, in SUBJECTS order.
    """
    out: dict[str, list[int]] = {}
    for name in sorted(sizes):
        out[name] = sorted(random.Random(f"{TINY_SEED}:{name}").sample(range(sizes[name]), TINY_SIZE))
    flat = [(subject, i) for subject, size in mmlu_sizes.items() for i in range(size)]
    for subject, index in sorted(random.Random(f"{TINY_SEED}:mmlu").sample(flat, TINY_SIZE)):
        out.setdefault(f"mmlu_{subject}", []).append(index)
    return {name: sorted(ids) for name, ids in out.items()}


@cache
def load_subset(name: str) -> dict:
    path = SUBSET_DIR / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in SUBSET_DIR.glob("*.json"))
        raise DuskError(f"unknown subset {name!r}; known: {', '.join(known)}")
    return json.loads(path.read_text())


def subset_ids(name: str, task: str, limit: int | None = None) -> list[int] | None:
    """Doc ids of `task` in subset `name`; [] for an MMLU subject the subset does not sample; error for others.

    With `limit`: a seeded draw of `limit` of the subset's items of the task (for MMLU, `limit` of its items over
    all subjects together, as the subset itself was drawn), so `--subset tiny --limit 20` is a fixed, smaller,
    unbiased part of the tiny subset, the same on every machine."""
    subset = load_subset(name)
    if task not in subset["ids"]:
        if task.startswith("mmlu_"):
            return []
        raise DuskError(f"subset {name!r} has no items for task {task!r}; it covers {', '.join(subset['tasks'])}")
    if limit is None:
        return list(subset["ids"][task])
    if task.startswith("mmlu_"):
        flat = sorted((t, i) for t, ids in subset["ids"].items() if t.startswith("mmlu_") for i in ids)
        picked = random.Random(f"{TINY_SEED}:{name}:mmlu:{limit}").sample(flat, min(limit, len(flat)))
        return sorted(i for t, i in picked if t == task)
    ids = subset["ids"][task]
    return sorted(random.Random(f"{TINY_SEED}:{name}:{task}:{limit}").sample(ids, min(limit, len(ids))))
