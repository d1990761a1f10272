"""Tasks, few-shot draws, metrics and raw readers: checked against lm-eval's own functions and the data files."""

import json
import random

import pytest
from eval_task_fixtures import real_data_dir

from dusk.data.benchmarks import load_docs, scored_items
from dusk.errors import DuskError
from dusk.eval import metrics
from dusk.eval.fewshot import plan_fewshot
from dusk.eval.subsets import draw_tiny, load_subset
from dusk.eval.tasks import expand_tasks, get_task
from dusk.eval.tasks.base import loglikelihood_requests


@pytest.fixture
def data(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DUSK_DATA_DIR", str(real_data_dir()))


def test_registry_groups_and_unknown_names():
    assert len(expand_tasks(["mmlu"])) == 57
    h6 = expand_tasks(["h6"])
    assert len(h6) == 62 and h6[0] == "arc_challenge" and h6[-1] == "gsm8k"
    assert expand_tasks(["gsm8k", "gsm8k"]) == ["gsm8k"]
    with pytest.raises(DuskError, match="unknown task 'arc'; known: .*h6.*arc_challenge.*mmlu_<subject>"):
        get_task("arc")


def test_split_sizes_match_source_md(data):
    assert len(load_docs("arc_challenge", "test")) == 1172
    assert len(load_docs("hellaswag", "validation")) == 10042
    assert len(load_docs("truthfulqa", "validation")) == 817
    assert len(load_docs("winogrande", "validation")) == 1267
    assert len(load_docs("winogrande", "train")) == 10234
    assert len(load_docs("gsm8k", "test")) == 1319
    assert len(scored_items("mmlu")) == 14042
    assert scored_items("truthfulqa")[0][1].startswith("What is the smallest country")


def test_arc_numeric_labels_and_odd_choice_counts(data):
    docs = load_docs("arc_challenge", "test")
    task = get_task("arc_challenge")
    numeric = [d for d in docs if d["answerKey"].isdigit()]
    assert len(numeric) == 22
    assert {len(task.choices(d)) for d in docs} == {3, 4, 5}
    doc = numeric[0]
    assert task.target(doc) == doc["choices"]["text"][int(doc["answerKey"]) - 1]


def test_fewshot_replays_lm_eval_sampler(data):
    """lm-eval 0.4's ContextSampler with seed 1234, driven over the same docs, picks the same shots."""
    from lm_eval.api.samplers import ContextSampler

    task = get_task("hellaswag")
    docs = task.process(load_docs("hellaswag", "validation"))[:300]
    sampler = ContextSampler(docs, rnd=1234)
    expected = [[docs.index(s) for s in sampler.sample(10, eval_doc=doc)] for doc in docs[:20]]
    plan = plan_fewshot(task, "harness", docs, docs, limit=20)
    assert [shots for _, shots in plan] == expected
    assert all(index not in shots for index, shots in plan)


def test_leaderboard_mode_shuffles_with_seed_42(data):
    task = get_task("arc_challenge")
    docs, pool = load_docs("arc_challenge", "test"), load_docs("arc_challenge", "train")
    rnd = random.Random(42)
    order = list(range(len(docs)))
    rnd.shuffle(order)
    first = rnd.sample(range(len(pool)), 25)
    plan = plan_fewshot(task, "leaderboard", docs, pool, limit=3)
    assert [index for index, _ in plan] == order[:3]
    assert plan[0][1] == first


def test_mmlu_prompt_and_first_n(data):
    task = get_task("mmlu_abstract_algebra")
    docs, dev = load_docs(task.dataset, "test"), load_docs(task.dataset, "dev")
    plan = plan_fewshot(task, "harness", docs, dev, limit=2)
    assert plan == [(0, [0, 1, 2, 3, 4]), (1, [0, 1, 2, 3, 4])]
    requests = loglikelihood_requests(task, docs[0], dev[:5])
    assert requests[0].context.startswith("The following are multiple choice questions (with answers) about abstract")
    assert requests[0].context.endswith("\nD. " + docs[0]["choices"][3] + "\nAnswer:")
    assert [r.continuation for r in requests] == [" A", " B", " C", " D"]


def test_winogrande_partial_scoring():
    task = get_task("winogrande")
    doc = {
        "sentence": "Sarah was better than Maria so _ got the easy cases.",
        "option1": "Sarah",
        "option2": "Maria",
        "answer": "2",
    }
    requests = loglikelihood_requests(task, doc, [doc])
    shot = "Sarah was better than Maria so Maria got the easy cases.\n\n"
    assert requests[0].context == shot + "Sarah was better than Maria so Sarah"
    assert requests[1].context == shot + "Sarah was better than Maria so Maria"
    assert {r.continuation for r in requests} == {" got the easy cases."}


def test_metrics_match_lm_eval():
    from lm_eval.api.metrics import mean_stderr
    from lm_eval.filters.extraction import RegexFilter

    text = "She has 3 + 4 = 7 apples.\n#### 1,234.\nQuestion"
    strict = RegexFilter().apply([[text]], [{}])[0][0]
    flexible = RegexFilter(r"(-?[$0-9.,]{2,})|(-?[0-9]+)", group_select=-1).apply([[text]], [{}])[0][0]
    assert metrics.strict_extract(text) == strict == "1,234."
    assert metrics.flexible_extract(text) == flexible
    assert metrics.exact_match(strict, "so #### 1234") == 1.0
    assert metrics.exact_match("[invalid]", "#### 12") == 0.0
    values = [1.0, 0.0, 1.0, 1.0]
    assert metrics.mean_stderr(values) == pytest.approx(mean_stderr(values))
    assert metrics.choice_scores([-4.0, -3.0], ["abcd", "a"], 0) == {"acc": 0.0, "acc_norm": 1.0}
    assert metrics.mc2([0.0, 0.0, 0.0], [1, 0, 0]) == pytest.approx(1 / 3)


def test_tiny_subset_is_the_documented_draw():
    subset = load_subset("tiny")
    assert draw_tiny(subset["sizes"], subset["mmlu_sizes"]) == subset["ids"]
    assert all(len(subset["ids"][name]) == 100 for name in subset["sizes"])
    assert sum(len(ids) for name, ids in subset["ids"].items() if name.startswith("mmlu_")) == 100


def test_malformed_record_names_file_and_line(tmp_path, monkeypatch):
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text(json.dumps({"question": "q", "answer": "#### 1"}) + "\n{oops\n")
    monkeypatch.setenv("DUSK_DATA_DIR", str(tmp_path))
    with pytest.raises(DuskError, match=r"gsm8k/test.jsonl:2: malformed JSON Lines record"):
        load_docs("gsm8k", "test")
    with pytest.raises(DuskError, match=r"data file missing for 'winogrande'.*DUSK_DATA_DIR"):
        load_docs("winogrande", "validation")
