"""Decontaminate training data against the six H6 benchmarks, then deduplicate; report what was dropped and why.

Rules, applied in order (a record is dropped by the first rule that fires):
1. `task_name`: a FLAN task/source name from the SOLAR paper's Table 8 in one of the record's name fields;
2. `ngram`: a 13-gram (lm-eval's normalisation) shared with a scored benchmark item (question + answer text), or
   the whole item when it has fewer than 13 words (and at least `min_words`, 8);
3. `exact_dup`: same normalised text as an earlier kept record;
4. `near_dup`: MinHash near-duplicate (Jaccard >= 0.8) of an earlier kept record.
Surviving records are written unchanged (every original field), in input order. This module holds the rules only
(pure functions over records); `dusk.data.decontam_job` reads, picks the engine and writes.

    DUSK_DATA_DIR=../shared/data dusk data decontaminate flan_cot --out runs/flan_clean.jsonl --report runs/r.json
"""

import re
from dataclasses import dataclass, field

from dusk.data.dedup import exact_duplicates, near_duplicates
from dusk.data.ngrams import MIN_WORDS, BenchmarkItem, Match, NgramIndex
from dusk.errors import DuskError
from dusk.h6 import H6_DATASETS

TASK_ALIASES = {"truthfulqa_mc2": "truthfulqa", "truthfulqa_mc": "truthfulqa", "arc": "arc_challenge"}
RULES = ("task_name", "ngram", "exact_dup", "near_dup")
# The SOLAR paper's Table 8: FLAN tasks dropped from the instruction data because they are benchmark-derived.
TABLE8_TASKS = (
    "task228_arc_answer_generation_easy",
    "ai2_arc/ARC-Challenge:1.0.0",
    "ai2_arc/ARC-Easy:1.0.0",
    "task229_arc_answer_generation_hard",
    "hellaswag:1.1.0",
    "task1389_hellaswag_completion",
    "cot_gsm8k",
    "cot_gsm8k_ii",
    "drop:2.0.0",
    "winogrande:1.1.0",
)
TABLE8_PATTERN = re.compile(
    r"(?<![a-z0-9])(task228_|task229_|task1389_)"
    r"|(?<![a-z0-9_])(ai2_arc/arc[-_](challenge|easy)|hellaswag|drop|winogrande|cot_gsm8k(_ii)?)(:[0-9.]+)?(?![a-z0-9_])"
)
NAME_FIELDS = ("_task_name", "task_name", "task", "_task_source", "source", "id")
# Fields that identify or describe a record rather than hold its content: not part of its text for matching.
META_FIELDS = frozenset(
    {
        "provenance",
        "id",
        "_id",
        "qID",
        "source_index",
        "metadata",
        "category",
        "_task_name",
        "task_name",
        "task",
        "_task_source",
        "source",
        "_template_idx",
        "_template_type",
    }
)


@dataclass(frozen=True)
class DecontamConfig:
    """What decontamination and dedup do."""

    n: int = 13  # n-gram length in words (lm-eval uses 13)
    min_words: int = MIN_WORDS  # an item shorter than n but at least this long matches whole (GPT-3's rule)
    tasks: tuple[str, ...] = H6_DATASETS  # benchmarks whose scored items are matched
    task_names: bool = True  # apply the Table 8 FLAN task-name filter
    dedup: bool = True  # drop exact duplicates (keep the first)
    near_dedup: bool = True  # drop MinHash near-duplicates (keep the first)
    threshold: float = 0.8  # near-dup Jaccard threshold
    examples: int = 3  # dropped examples per dataset and rule in the report


@dataclass
class Verdict:
    """Why one record goes: a rule name and what it matched."""

    rule: str
    detail: dict = field(default_factory=dict)


def check_tasks(tasks: tuple[str, ...] | list[str]) -> list[str]:
    """The benchmark names behind `tasks` (aliases resolved); an unknown name is refused."""
    names = []
    for task in tasks:
        name = TASK_ALIASES.get(task, task)
        if name not in H6_DATASETS:
            raise DuskError(f"unknown benchmark {task!r}; known: {', '.join(H6_DATASETS)}")
        names.append(name)
    return names


def benchmark_items_for(tasks: tuple[str, ...] | list[str]) -> list[BenchmarkItem]:
    """Scored items of the given H6 tasks, read through dusk.data.benchmarks.scored_items."""
    try:
        from dusk.data.benchmarks import scored_items
    except ImportError as exc:
        raise DuskError("benchmark items need dusk.data.benchmarks.scored_items, which is not available") from exc
    items = []
    for name in check_tasks(tasks):
        items.extend(
            BenchmarkItem(name, str(doc_id), question, answer) for doc_id, question, answer in scored_items(name)
        )
    return items


def task_name_hit(record: dict) -> str | None:
    """The Table 8 task name found in one of the record's name fields, if any."""
    for name in NAME_FIELDS:
        value = record.get(name)
        if isinstance(value, str) and TABLE8_PATTERN.search(value.lower()):
            return value
    return None


def _strings(value: object, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in META_FIELDS:
                _strings(item, out)
    elif isinstance(value, list):
        for item in value:
            _strings(item, out)


def record_text(record: dict) -> str:
    """The record's content: every string value (nested too) except identifier/metadata fields, joined by newlines."""
    parts: list[str] = []
    _strings(record, parts)
    return "\n".join(parts)


def _ngram_detail(match: Match, items: dict[tuple[str, str], BenchmarkItem]) -> dict:
    item = items.get((match.task, match.doc_id))
    return {
        "task": match.task,
        "doc_id": match.doc_id,
        "ngram": match.ngram,
        "whole_item": match.whole_item,
        "benchmark_question": item.question if item else "",
        "benchmark_answer": item.answer if item else "",
    }


def screen(records: list[dict], index: NgramIndex | None, cfg: DecontamConfig) -> list[Verdict | None]:
    """Rules 1 and 2 for a batch of records (independent per record, so this is what Spark maps over partitions)."""
    verdicts: list[Verdict | None] = [None] * len(records)
    if cfg.task_names:
        for position, record in enumerate(records):
            if name := task_name_hit(record):
                verdicts[position] = Verdict("task_name", {"task_name": name})
    if index is not None:
        lookup = index.by_id
        pending = [position for position, verdict in enumerate(verdicts) if verdict is None]
        for position, match in zip(pending, index.find([record_text(records[p]) for p in pending]), strict=True):
            if match is not None:
                verdicts[position] = Verdict("ngram", _ngram_detail(match, lookup))
    return verdicts


def dedup_verdicts(texts: dict[int, str], cfg: DecontamConfig) -> dict[int, Verdict]:
    """Rules 3 and 4 over the records that passed 1 and 2 (record index -> text)."""
    from dusk.data.dedup import exact_key

    verdicts: dict[int, Verdict] = {}
    if cfg.dedup:
        for record, kept in exact_duplicates([(i, exact_key(text)) for i, text in texts.items()]).items():
            verdicts[record] = Verdict("exact_dup", {"duplicate_of": kept})
    if cfg.near_dedup:
        survivors = [i for i in sorted(texts) if i not in verdicts]
        dropped = near_duplicates([texts[i] for i in survivors], cfg.threshold)
        for position, kept in dropped.items():
            verdicts[survivors[position]] = Verdict("near_dup", {"duplicate_of": survivors[kept]})
    return verdicts


def decide_local(records: list[dict], index: NgramIndex | None, cfg: DecontamConfig) -> dict[int, Verdict]:
    """Record index -> verdict for every dropped record (the local engine)."""
    dropped: dict[int, Verdict] = {}
    batch = 2048
    for start in range(0, len(records), batch):
        for offset, verdict in enumerate(screen(records[start : start + batch], index, cfg)):
            if verdict is not None:
                dropped[start + offset] = verdict
    if cfg.dedup or cfg.near_dedup:
        texts = {i: record_text(record) for i, record in enumerate(records) if i not in dropped}
        dropped.update(dedup_verdicts(texts, cfg))
    return dropped


def _excerpt(record: dict, limit: int = 300) -> str:
    text = record_text(record)
    return text if len(text) <= limit else text[:limit] + "..."


def build_report(records: list[dict], groups: list[str], dropped: dict[int, Verdict], cfg: DecontamConfig) -> dict:
    """Per dataset: records in/out, dropped per rule, and a few dropped examples with what they matched."""
    datasets: dict[str, dict] = {}
    for position, group in enumerate(groups):
        entry = datasets.setdefault(group, {"in": 0, "out": 0, "dropped": dict.fromkeys(RULES, 0), "examples": []})
        entry["in"] += 1
        verdict = dropped.get(position)
        if verdict is None:
            entry["out"] += 1
            continue
        entry["dropped"][verdict.rule] += 1
        if sum(example["rule"] == verdict.rule for example in entry["examples"]) < cfg.examples:
            example = {"index": position, "rule": verdict.rule, "record": _excerpt(records[position]), **verdict.detail}
            entry["examples"].append(example)
    totals = {
        "in": len(records),
        "out": len(records) - len(dropped),
        "dropped": {rule: sum(v.rule == rule for v in dropped.values()) for rule in RULES},
    }
    return {"config": {**cfg.__dict__, "tasks": list(cfg.tasks)}, "total": totals, "datasets": datasets}


def format_report(report: dict) -> str:
    """A short table of the report for the terminal."""
    lines = [f"{'dataset':<24} {'in':>7} {'out':>7} " + " ".join(f"{rule:>9}" for rule in RULES)]
    rows = [*report["datasets"].items(), ("TOTAL", report["total"])]
    for name, entry in rows:
        counts = " ".join(f"{entry['dropped'][rule]:>9}" for rule in RULES)
        lines.append(f"{name:<24} {entry['in']:>7} {entry['out']:>7} {counts}")
    return "\n".join(lines)
