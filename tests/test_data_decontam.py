"""Decontamination: planted benchmark items are caught (also with changed case/punctuation), clean records survive
unchanged, the Table 8 name filter, exact and near dedup keep exactly one per group, and the report says why."""

import json
import string

import pytest
from pydantic import ValidationError

from dusk.data.decontam import DecontamConfig, benchmark_items_for, decide_local, record_text, task_name_hit
from dusk.data.decontam_job import DecontaminateJob, run
from dusk.data.dedup import near_duplicates
from dusk.data.ngrams import BenchmarkItem, NgramIndex, normalize_words
from dusk.errors import DuskError
from tests.data_fixtures import read_jsonl, real_data_dir, write_jsonl

ARC_Q = (
    "Which of the following statements best explains why a metal spoon feels colder than a wooden spoon "
    "at the same room temperature?"
)
GSM_Q = (
    "A baker makes 48 loaves in the morning and half as many in the afternoon, then sells all but 7 of them "
    "at 3 dollars each. How much money does the baker make?"
)
CLEAN = "Write a short poem about the sea and the wide blue sky over the quiet harbour town at dawn."


def _items() -> list[BenchmarkItem]:
    return [
        BenchmarkItem("arc_challenge", "17", ARC_Q, "Metal conducts heat away from the hand faster than wood."),
        BenchmarkItem("gsm8k", "3", GSM_Q, "Afternoon: 24. Total 72. Sold 65. 65 * 3 = 195\n#### 195"),
        BenchmarkItem("truthfulqa", "0", "Short question?", "Short answer."),
    ]


def test_normalisation_matches_lm_eval_janitor():
    from lm_eval.decontamination.janitor import Janitor

    text = "It's  a TEST, of the (Janitor's) normalisation: 3.5% -- done!"
    assert " ".join(normalize_words(text)) == " ".join(Janitor().normalize_string(text).split())
    assert normalize_words("A-b, C.d!") == ["ab", "cd"] and string.punctuation.translate({}) == string.punctuation


def test_planted_items_are_caught_and_clean_record_kept():
    index = NgramIndex.build(_items())
    shouted = ARC_Q.upper().replace(",", "").replace("?", " ?!").replace(" at ", " ... at ")
    records = [
        {"instruction": "Solve this.", "input": GSM_Q, "output": "195", "id": "a"},
        {"instruction": shouted, "output": "B"},
        {"instruction": CLEAN, "output": "The sea is wide."},
        {"instruction": "Short question? Short answer.", "output": "kept: the item has fewer than min_words words"},
    ]
    dropped = decide_local(records, index, DecontamConfig(dedup=False, near_dedup=False))
    assert set(dropped) == {0, 1}
    assert (dropped[0].rule, dropped[0].detail["task"], dropped[0].detail["doc_id"]) == ("ngram", "gsm8k", "3")
    assert dropped[1].detail["task"] == "arc_challenge" and dropped[1].detail["benchmark_question"] == ARC_Q
    assert len(dropped[1].detail["ngram"].split()) == 13
    assert index.stats()["items_shorter_than_n"] == 1


SHORT_Q = "Which organ of the human body secretes insulin?"  # 8 words: no 13-gram
SHORT_A = "The pancreas."


def test_short_item_matches_whole():
    """An item shorter than n matches when its whole word sequence is in the text (GPT-3's variable-length rule)."""
    index = NgramIndex.build([*_items(), BenchmarkItem("mmlu", "anatomy/7", SHORT_Q, SHORT_A)])
    texts = [
        "Quiz time!\nWHICH organ of the human body secretes insulin\n\nthe pancreas!!\nNext question.",
        f"{SHORT_Q}\nThe liver.",  # the question with another answer: not the item
        "organ of the human body secretes insulin? The pancreas.",  # part of the item
        "Which organ of the human body secretes",  # the item split across two texts of one batch
        "insulin? The pancreas.",
        f"{CLEAN} Short question? Short answer.",  # a 4-word item: below min_words, never matched
    ]
    found = index.find(texts)
    assert found[0] is not None, "a copied short item must match"
    whole = "which organ of the human body secretes insulin the pancreas"
    assert (found[0].task, found[0].doc_id, found[0].ngram, found[0].whole_item) == ("mmlu", "anatomy/7", whole, True)
    assert found[1:] == [None] * 5
    assert index.stats()["items_matched_whole"] == 1 and index.stats()["items_too_short"] == 1
    assert NgramIndex.build([BenchmarkItem("mmlu", "anatomy/7", SHORT_Q, SHORT_A)], min_words=11).find(texts[:1]) == [
        None
    ]
    assert index.find([texts[0] + " " + ARC_Q])[0].doc_id == "17"  # a 13-gram wins over an earlier short item


def test_ngram_spanning_question_and_answer_is_found():
    index = NgramIndex.build(_items())
    tail = " ".join(GSM_Q.split()[-9:]) + " Afternoon: 24. Total 72."  # 9 question words + 4 answer words
    assert index.find([tail, CLEAN])[0].doc_id == "3"
    assert index.find([tail, CLEAN])[1] is None


def test_table8_task_names():
    assert task_name_hit({"_task_name": "ai2_arc/ARC-Challenge:1.0.0"})
    assert task_name_hit({"task": "task1389_hellaswag_completion"})
    assert task_name_hit({"_task_name": "cot_gsm8k_ii"}) and task_name_hit({"source": "drop:2.0.0"})
    assert not task_name_hit({"_task_name": "cot_aqua"}) and not task_name_hit({"task": "dropout_notes"})
    assert not task_name_hit({"task": "task2280_other"}) and not task_name_hit({"instruction": "hellaswag"})


def test_near_dedup_keeps_exactly_one_per_group():
    import random

    rng = random.Random(0)
    vocabulary = [f"word{i}" for i in range(500)]
    texts = []
    for _ in range(3):
        words = rng.choices(vocabulary, k=100)
        changed = words[:50] + ["different"] + words[51:]
        texts += [" ".join(words), " ".join(changed), " ".join(words + ["the", "end"])]
        texts.append(" ".join(rng.choices(vocabulary, k=100)))  # unrelated
    dropped = near_duplicates(texts)
    kept = [i for i in range(len(texts)) if i not in dropped]
    assert kept == [0, 3, 4, 7, 8, 11]  # the first of each near-duplicate group and every unrelated text
    assert all(dropped[i] == i - (i % 4) for i in dropped)


def test_exact_dedup_ignores_case_punctuation_and_ids():
    records = [
        {"id": 1, "text": "Hello, World! This is a record."},
        {"id": 2, "text": "hello world this is a RECORD"},
        {"id": 3, "text": "Something else entirely."},
    ]
    dropped = decide_local(records, None, DecontamConfig(tasks=(), near_dedup=False))
    assert {i: (v.rule, v.detail["duplicate_of"]) for i, v in dropped.items()} == {1: ("exact_dup", 0)}
    assert record_text({"id": "x", "provenance": {"dataset": "d"}, "messages": [{"content": "hi"}]}) == "hi"


@pytest.fixture
def data_env(monkeypatch):
    monkeypatch.setenv("DUSK_DATA_DIR", str(real_data_dir()))


def test_real_benchmarks_catch_planted_items_and_report(data_env, tmp_path):
    from dusk.data.benchmarks import load_docs

    gsm = load_docs("gsm8k", "test")[5]
    arc = load_docs("arc_challenge", "test")[100]
    clean = [row for row in read_jsonl(real_data_dir() / "train/ultrafeedback/train_clean.jsonl")[:20]]
    planted = [
        {"question": gsm["question"], "answer": "42", "my_id": "gsm-copy"},
        {"instruction": arc["question"].lower().replace(",", " ,").rstrip("?") + "??", "output": "x", "my_id": "arc"},
        {"_task_name": "ai2_arc/ARC-Easy:1.0.0", "inputs": "a question", "targets": "an answer"},
        dict(clean[0]),
    ]
    source = write_jsonl(tmp_path / "train.jsonl", clean + planted)
    job = DecontaminateJob(input=str(source), out=tmp_path / "clean.jsonl", report=tmp_path / "report.json")
    out, report = run(job)
    survivors = read_jsonl(out)
    assert survivors == clean  # kept records unchanged, in order; planted and duplicate records gone
    entry = report["datasets"]["train"]
    assert entry["in"] == 24 and entry["out"] == 20
    assert entry["dropped"] == {"task_name": 1, "ngram": 2, "exact_dup": 1, "near_dup": 0}
    matched = {(e["task"], e["doc_id"]): e for e in entry["examples"] if e["rule"] == "ngram"}
    assert set(matched) == {("gsm8k", "5"), ("arc_challenge", "100")}
    assert matched[("gsm8k", "5")]["benchmark_question"] == gsm["question"]
    assert json.loads((tmp_path / "report.json").read_text())["total"]["out"] == 20
    assert report["index"]["items"] == sum(len(benchmark_items_for([t])) for t in ("gsm8k", "arc_challenge")) + sum(
        len(benchmark_items_for([t])) for t in ("hellaswag", "mmlu", "truthfulqa", "winogrande")
    )


def test_real_short_item_is_dropped(data_env, tmp_path):
    """A real MMLU item of 8-12 words copied into a record is dropped by the engine (the harness would keep it)."""
    items = benchmark_items_for(["mmlu"])
    short = next(item for item in items if 10 <= len(normalize_words(item.text)) < 13)
    records = [
        {"instruction": "Answer the question.", "input": short.question, "output": short.answer},
        {"instruction": "Answer the question.", "input": short.question, "output": "I do not know."},
    ]
    job = DecontaminateJob(input=str(write_jsonl(tmp_path / "t.jsonl", records)), out=tmp_path / "o.jsonl",
                           tasks=("mmlu",), dedup=False, near_dedup=False)  # fmt: skip
    out, report = run(job)
    assert read_jsonl(out) == records[1:]
    (example,) = report["datasets"]["t"]["examples"]
    assert (example["doc_id"], example["whole_item"]) == (short.doc_id, True)
    assert report["index"]["items_matched_whole"] > 0


def test_bad_inputs(tmp_path, monkeypatch):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n[1, 2]\n', encoding="utf-8")
    job = DecontaminateJob(input=str(bad), out=tmp_path / "out.jsonl", tasks="none")
    with pytest.raises(DuskError, match=r"bad\.jsonl:2: expected a JSON object"):
        run(job)
    assert not (tmp_path / "out.jsonl").exists()
    with pytest.raises(DuskError, match="unknown benchmark 'squad'"):
        benchmark_items_for(["squad"])
    with pytest.raises(ValidationError, match="engine"):
        DecontaminateJob(input=str(bad), out=tmp_path / "o.jsonl", engine="dask")
