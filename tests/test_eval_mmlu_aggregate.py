"""MMLU's headline stderr in harness mode is pooled the way lm-eval 0.4.13 pools it: within each of the four
categories (its groups mmlu_stem, mmlu_other, mmlu_social_sciences, mmlu_humanities), then over the categories."""

import random
from pathlib import Path

import pytest

from dusk.eval import metrics
from dusk.eval.harness import category_pooled_stderr
from dusk.eval.tasks.mmlu import CATEGORIES, CATEGORY_OF, SUBJECTS

lm_eval_metrics = pytest.importorskip("lm_eval.api.metrics")


def test_every_subject_has_the_category_lm_eval_gives_it() -> None:
    import lm_eval

    folder = Path(lm_eval.__file__).parent / "tasks" / "mmlu" / "default"
    tags = {}
    for path in folder.glob("mmlu_*.yaml"):
        text = path.read_text()
        subject = text.split('"dataset_name": "')[1].split('"')[0]
        tags[subject] = text.split('"tag": "mmlu_')[1].split('_tasks"')[0]
    assert len(tags) == 57
    assert CATEGORY_OF == tags
    assert sorted(s for subjects in CATEGORIES.values() for s in subjects) == sorted(SUBJECTS)


def test_stderr_is_pooled_per_category_then_over_categories() -> None:
    rng = random.Random(0)
    subjects = rng.sample(list(SUBJECTS), 30)
    stderrs = [rng.uniform(0.02, 0.15) for _ in subjects]
    sizes = [rng.randint(5, 300) for _ in subjects]

    groups: dict[str, tuple[list[float], list[int]]] = {}
    for subject, stderr, size in zip(subjects, stderrs, sizes, strict=True):
        groups.setdefault(CATEGORY_OF[subject], ([], []))
        groups[CATEGORY_OF[subject]][0].append(stderr)
        groups[CATEGORY_OF[subject]][1].append(size)
    per_category = [float(lm_eval_metrics.pooled_sample_stderr(s, n)) for s, n in groups.values()]
    expected = float(lm_eval_metrics.pooled_sample_stderr(per_category, [sum(n) for _, n in groups.values()]))

    assert category_pooled_stderr(subjects, stderrs, sizes) == pytest.approx(expected, rel=1e-12)
    one_step = metrics.pooled_stderr(stderrs, sizes)  # what dusk did before: a different number
    assert abs(one_step - expected) > 1e-6


def test_a_category_of_one_item_subjects_has_no_stderr() -> None:
    assert category_pooled_stderr(["anatomy", "astronomy"], [0.0, 0.0], [1, 1]) is None
