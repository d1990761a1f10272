"""Raw readers for the benchmark files under `$DUSK_DATA_DIR`: one list of records per (task, split), in file order.

Records come back in the shape lm-evaluation-harness sees them for the Hugging Face copies of these datasets
(ARC: `question`/`choices{text,label}`/`answerKey`; MMLU: `question`/`subject`/`choices`/`answer`; ...), so the
task modules can be written against the harness's task definitions.

    DUSK_DATA_DIR=../shared/data python -c "from dusk.data.benchmarks import *; print(load_docs('gsm8k', 'test'))"
"""

import bz2
import csv
import json
from collections.abc import Callable
from pathlib import Path

from dusk.data.paths import data_file
from dusk.data.readers import read_jsonl_objects
from dusk.errors import DuskError
from dusk.h6 import H6_DATASETS

ARC_FILES = {"train": "Train", "validation": "Dev", "test": "Test"}
WINOGRANDE_FILES = {
    "validation": "dev",
    "dev": "dev",
    "train": "train_l",
    "train_l": "train_l",
    "train_m": "train_m",
    "train_s": "train_s",
    "train_xs": "train_xs",
}
MMLU_SPLITS = ("dev", "val", "test")


def _bad(path: Path, line: int, what: str) -> DuskError:
    return DuskError(f"{path}:{line}: malformed record: {what}")


def _need(path: Path, line: int, record: dict, fields: tuple[str, ...]) -> None:
    missing = [field for field in fields if field not in record]
    if missing:
        raise _bad(path, line, f"missing field(s) {', '.join(missing)}")


def _arc(name: str, split: str) -> list[dict]:
    if split not in ARC_FILES:
        raise DuskError(f"{name}: unknown split {split!r}; expected one of {', '.join(ARC_FILES)}")
    prefix = "ARC-Challenge" if name == "arc_challenge" else "ARC-Easy"
    path = data_file(name, f"{prefix}-{ARC_FILES[split]}.jsonl")
    docs = []
    for line, record in read_jsonl_objects(path):
        _need(path, line, record, ("id", "question", "answerKey"))
        question = record["question"]
        if not isinstance(question, dict) or "stem" not in question or not question.get("choices"):
            raise _bad(path, line, "expected question.stem and question.choices")
        try:
            texts = [choice["text"] for choice in question["choices"]]
            labels = [choice["label"] for choice in question["choices"]]
        except (KeyError, TypeError) as exc:
            raise _bad(path, line, "each choice needs text and label") from exc
        if record["answerKey"] not in labels:
            raise _bad(path, line, f"answerKey {record['answerKey']!r} not among labels {labels}")
        docs.append(
            {
                "id": record["id"],
                "question": question["stem"],
                "choices": {"text": texts, "label": labels},
                "answerKey": record["answerKey"],
            }
        )
    return docs


def _hellaswag(split: str) -> list[dict]:
    """llama.cpp's 6-line format: `label: ctx`, gold index, four endings (already cleaned by its extractor)."""
    if split != "validation":
        raise DuskError(f"hellaswag: only the validation split is available here, not {split!r}")
    path = data_file("hellaswag", "hellaswag_val_full.txt.bz2")
    with bz2.open(path, "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) % 6:
        raise _bad(path, len(lines), f"{len(lines)} lines is not a multiple of 6 (one item is 6 lines)")
    docs = []
    for start in range(0, len(lines), 6):
        label = lines[start + 1].strip()
        if label not in ("0", "1", "2", "3"):
            raise _bad(path, start + 2, f"gold label {label!r} is not 0-3")
        docs.append({"query": lines[start], "choices": lines[start + 2 : start + 6], "label": int(label)})
    return docs


def mmlu_subjects() -> list[str]:
    """The 57 subjects, from the test file names, sorted."""
    from dusk.data.paths import data_root

    folder = data_root() / "mmlu" / "test"
    if not folder.is_dir():
        data_file("mmlu", "test/abstract_algebra_test.csv")  # raises the missing-file error
    return sorted(path.name.removesuffix("_test.csv") for path in folder.glob("*_test.csv"))


def _mmlu(subject: str, split: str) -> list[dict]:
    if split not in MMLU_SPLITS:
        raise DuskError(f"mmlu: unknown split {split!r}; expected one of {', '.join(MMLU_SPLITS)}")
    path = data_file("mmlu", f"{split}/{subject}_{split}.csv")
    docs = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        for row in reader:
            line = reader.line_num
            if len(row) != 6:
                raise _bad(path, line, f"expected 6 columns (question, A, B, C, D, answer), got {len(row)}")
            if row[5] not in ("A", "B", "C", "D"):
                raise _bad(path, line, f"answer {row[5]!r} is not A-D")
            docs.append({"question": row[0], "subject": subject, "choices": row[1:5], "answer": "ABCD".index(row[5])})
    return docs


def _targets(path: Path, line: int, value: object) -> dict:
    if not isinstance(value, dict) or not value or not all(label in (0, 1) for label in value.values()):
        raise _bad(path, line, "targets must map answer text to 0 or 1")
    return {"choices": list(value), "labels": list(value.values())}


def _truthfulqa(split: str) -> list[dict]:
    if split != "validation":
        raise DuskError(f"truthfulqa: only the validation split exists, not {split!r}")
    path = data_file("truthfulqa", "mc_task.json")
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise _bad(path, exc.lineno, f"not JSON ({exc.msg})") from exc
    if not isinstance(records, list):
        raise _bad(path, 1, "expected a JSON list of questions")
    docs = []
    for index, record in enumerate(records):
        where = index + 1  # a JSON list has no line per record; report the item's 1-based position
        if not isinstance(record, dict) or not {"question", "mc1_targets", "mc2_targets"} <= set(record):
            raise _bad(path, where, f"item {index} needs question, mc1_targets, mc2_targets")
        mc1, mc2 = _targets(path, where, record["mc1_targets"]), _targets(path, where, record["mc2_targets"])
        docs.append({"question": record["question"], "mc1_targets": mc1, "mc2_targets": mc2})
    return docs


def _winogrande(split: str) -> list[dict]:
    if split not in WINOGRANDE_FILES:
        raise DuskError(f"winogrande: unknown split {split!r}; expected one of {', '.join(WINOGRANDE_FILES)}")
    path = data_file("winogrande", f"{WINOGRANDE_FILES[split]}.jsonl")
    docs = []
    for line, record in read_jsonl_objects(path):
        _need(path, line, record, ("sentence", "option1", "option2", "answer"))
        if record["sentence"].count("_") < 1 or str(record["answer"]) not in ("1", "2"):
            raise _bad(path, line, "sentence needs a `_` blank and answer must be 1 or 2")
        docs.append(record)
    return docs


def _gsm8k(split: str) -> list[dict]:
    if split not in ("train", "test"):
        raise DuskError(f"gsm8k: unknown split {split!r}; expected train or test")
    path = data_file("gsm8k", f"{split}.jsonl")
    docs = []
    for line, record in read_jsonl_objects(path):
        _need(path, line, record, ("question", "answer"))
        if "####" not in record["answer"]:
            raise _bad(path, line, "answer has no `#### N` final line")
        docs.append({"question": record["question"], "answer": record["answer"]})
    return docs


READERS: dict[str, Callable[[str], list[dict]]] = {
    "arc_challenge": lambda split: _arc("arc_challenge", split),
    "arc_easy": lambda split: _arc("arc_easy", split),
    "hellaswag": _hellaswag,
    "truthfulqa": _truthfulqa,
    "winogrande": _winogrande,
    "gsm8k": _gsm8k,
}


def load_docs(dataset: str, split: str) -> list[dict]:
    """The records of `dataset` (a name in READERS, or `mmlu_<subject>`) for `split`, in file order."""
    if dataset.startswith("mmlu_"):
        return _mmlu(dataset.removeprefix("mmlu_"), split)
    if dataset not in READERS:
        raise DuskError(f"unknown benchmark dataset {dataset!r}; known: {', '.join([*READERS, 'mmlu_<subject>'])}")
    return READERS[dataset](split)


def source_file(dataset: str, split: str) -> Path:
    """The data file that `load_docs(dataset, split)` reads (for provenance hashes)."""
    if dataset.startswith("mmlu_"):
        return data_file("mmlu", f"{split}/{dataset.removeprefix('mmlu_')}_{split}.csv")
    relative = {
        "arc_challenge": lambda: f"ARC-Challenge-{ARC_FILES.get(split, split)}.jsonl",
        "arc_easy": lambda: f"ARC-Easy-{ARC_FILES.get(split, split)}.jsonl",
        "hellaswag": lambda: "hellaswag_val_full.txt.bz2",
        "truthfulqa": lambda: "mc_task.json",
        "winogrande": lambda: f"{WINOGRANDE_FILES.get(split, split)}.jsonl",
        "gsm8k": lambda: f"{split}.jsonl",
    }
    if dataset not in relative:
        raise DuskError(f"unknown benchmark dataset {dataset!r}")
    return data_file(dataset, relative[dataset]())


def _items(dataset: str) -> list[tuple[str, str, str]]:
    if dataset == "mmlu":
        rows = []
        for subject in mmlu_subjects():
            for index, doc in enumerate(_mmlu(subject, "test")):
                rows.append((f"{subject}/{index}", doc["question"], doc["choices"][doc["answer"]]))
        return rows
    if dataset == "arc_challenge":
        docs = load_docs(dataset, "test")
        pairs = [(d["question"], d["choices"]["text"][d["choices"]["label"].index(d["answerKey"])]) for d in docs]
    elif dataset == "hellaswag":
        pairs = [(d["query"], d["choices"][d["label"]]) for d in load_docs(dataset, "validation")]
    elif dataset == "truthfulqa":
        pairs = [(d["question"], d["mc1_targets"]["choices"][0]) for d in load_docs(dataset, "validation")]
    elif dataset == "winogrande":
        pairs = [(d["sentence"], d[f"option{d['answer']}"]) for d in load_docs(dataset, "validation")]
    elif dataset == "gsm8k":
        pairs = [(d["question"], d["answer"]) for d in load_docs(dataset, "test")]
    else:
        raise DuskError(f"scored_items: unknown H6 dataset {dataset!r}; known: {', '.join(H6_DATASETS)}")
    return [(str(index), question, answer) for index, (question, answer) in enumerate(pairs)]


def scored_items(dataset: str) -> list[tuple[str, str, str]]:
    """(doc_id, question text, answer text) for every scored item of an H6 dataset (`mmlu` = all 57 subjects).

    doc_id is the 0-based position in the scored split as a string (`<subject>/<i>` for MMLU). TruthfulQA's
    answer is its best (mc1-true) answer; Winogrande's question is the sentence with its `_` blank.
    """
    return _items(dataset)
