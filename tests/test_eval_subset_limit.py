"""`--subset tiny --limit N`: a fixed, seeded N of the tiny subset's items per task (MMLU: N over all subjects), the
smaller H6 the main job scores on a CPU budget."""

from dusk.eval.subsets import load_subset, subset_ids
from dusk.eval.tasks import expand_tasks


def test_subset_with_limit_is_a_seeded_part_of_the_subset() -> None:
    tiny = load_subset("tiny")["ids"]
    for task in ("arc_challenge", "hellaswag", "truthfulqa_mc2", "winogrande", "gsm8k"):
        ids = subset_ids("tiny", task, 20)
        assert len(ids) == 20 and set(ids) <= set(tiny[task]) and ids == sorted(ids)
        assert ids == subset_ids("tiny", task, 20)  # the same draw every time
        assert ids != sorted(tiny[task])[:20]  # a draw over the whole subset, not its lowest doc ids
    subjects = [name for name in expand_tasks(["mmlu"])]
    mmlu = {name: subset_ids("tiny", name, 20) for name in subjects}
    assert sum(len(ids) for ids in mmlu.values()) == 20  # 20 MMLU items over all subjects, as the subset was drawn
    assert all(set(ids) <= set(tiny.get(name, [])) for name, ids in mmlu.items())
    assert subset_ids("tiny", "gsm8k") == sorted(tiny["gsm8k"])  # no limit: the whole subset
