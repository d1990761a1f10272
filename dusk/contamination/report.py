"""Write a contamination test's outputs: results.json (per-task figures + every setting + hashes), table.md (the
paper's Table 9 layout, with how to read it) and samples_<task>.jsonl (one line per tested item).

    dusk contamination smollm2-135m --reference smollm2-135m --tasks winogrande --n 5 --out runs/c; cat runs/c/table.md
"""

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from dusk import __version__
from dusk.contamination.items import DATASETS
from dusk.devices import device_record
from dusk.h6 import TITLE_OF_TASK
from dusk.hashing import sha256_dir, sha256_file
from dusk.run_output import RESULTS, samples_name, write_run_files

TITLES = TITLE_OF_TASK  # the table's column titles, as in the H6 report
SPLITS = {"arc_challenge": "test", "hellaswag": "validation", "truthfulqa": "validation", "winogrande": "validation"}
HEADLINE_K = "20"  # the Min-K% shown in the table (Shi et al.'s recommended k); every k is in results.json

READING = (
    "How to read this: an item's score is the fraction of the {sampler}'s sampled continuations on which the "
    "tested model's loss is lower than on the real text. A model that has seen the item finds the real text easier "
    "than almost any sample, so its score is near 0. `result < {t}, %` is the share of items scoring below {t}: "
    "near 0 = no sign of contamination (a clean model usually prefers its own kind of text), near 1 = the model "
    "very likely trained on these items (the public tool calls values above 0.9 highly likely). Min-K% Prob is the "
    "mean of the lowest k% token log-probs of the real text (closer to 0 = more familiar); model - reference > 0 "
    "means the tested model finds the item's rarest tokens more likely than the reference does."
)
SAMPLER_NOTES = {
    "reference": " Samples from the reference (the paper's test): a model that learned a task's answer format (e.g. "
    "GSM8K's) prefers any real item of that task to them, so read a high share next to Min-K model - reference.",
    "model": " Samples from the tested model itself (--sampler model): its samples share whatever format it "
    "learned, so only items it finds easier than its own writing stand out.",
}


def reading(threshold: float, sampler: str) -> str:
    """How to read the table, for the sampler that drew the continuations."""
    who = "reference" if sampler == "reference" else "tested model"
    return READING.format(t=threshold, sampler=who) + SAMPLER_NOTES[sampler]


@dataclass(frozen=True)
class TaskSummary:
    """A task's figures: suspicious share, mean score, Min-K% means (model, reference, difference), counts, time."""

    task: str
    items: int
    skipped_too_short: int
    requested: int
    available: int
    result_below_threshold: float | None
    mean_score: float | None
    min_k: dict[str, float]
    min_k_reference: dict[str, float]
    min_k_delta: dict[str, float]
    seconds_per_item: float | None


def _mean_by_k(profiles: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.fmean(p[k] for p in profiles) for k in profiles[0]} if profiles else {}


def summarize(result) -> TaskSummary:
    """The per-task figures of a TaskResult."""
    scores = result.scores
    model_k = _mean_by_k([s.min_k for s in scores])
    reference_k = _mean_by_k([s.min_k_reference for s in scores])
    return TaskSummary(
        task=result.task,
        items=len(scores),
        skipped_too_short=len(result.skipped),
        requested=result.requested,
        available=result.available,
        result_below_threshold=statistics.fmean(s.suspicious for s in scores) if scores else None,
        mean_score=statistics.fmean(s.score for s in scores) if scores else None,
        min_k=model_k,
        min_k_reference=reference_k,
        min_k_delta={k: model_k[k] - reference_k[k] for k in model_k},
        seconds_per_item=statistics.fmean(s.seconds for s in scores) if scores else None,
    )


def _cell(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_table(
    model_name: str, summaries: list[TaskSummary], threshold: float, samples: int, reference: str, sampler: str
) -> str:
    """Markdown: the Table 9 row (`result < t, %` per task), then the details rows and how to read them."""
    titles = [TITLES.get(s.task, s.task) for s in summaries]
    head = "| Model | " + " | ".join(titles) + " |\n|---|" + "---|" * len(titles) + "\n"
    main = f"| {model_name} | " + " | ".join(_cell(s.result_below_threshold) for s in summaries) + " |\n"
    rows = [
        ("mean score (near 0 = suspicious)", [_cell(s.mean_score) for s in summaries]),
        ("items tested (skipped: too short)", [f"{s.items} ({s.skipped_too_short})" for s in summaries]),
        (f"Min-K {HEADLINE_K}% Prob, model", [_cell(s.min_k.get(HEADLINE_K), 3) for s in summaries]),
        (f"Min-K {HEADLINE_K}% Prob, model - reference", [_cell(s.min_k_delta.get(HEADLINE_K), 3) for s in summaries]),
        ("seconds per item", [_cell(s.seconds_per_item, 1) for s in summaries]),
    ]
    details = "| | " + " | ".join(titles) + " |\n|---|" + "---|" * len(titles) + "\n"
    details += "".join(f"| {label} | " + " | ".join(cells) + " |\n" for label, cells in rows)
    return (
        f"Contamination test (SOLAR Appendix C, after Shi et al. 2023): result < {threshold}, %\n"
        f"reference: {reference}; {samples} continuations per item sampled by the {sampler}\n\n"
        f"{head}{main}\n{details}\n{reading(threshold, sampler)}\n"
    )


def data_hashes(tasks: list[str]) -> dict[str, str]:
    """sha256 of every benchmark file the tasks read."""
    from dusk.data.benchmarks import mmlu_subjects, source_file

    files = []
    for task in tasks:
        dataset = DATASETS[task]
        if dataset == "mmlu":
            files.extend(source_file(f"mmlu_{subject}", "test") for subject in mmlu_subjects())
        else:
            files.append(source_file(dataset, SPLITS.get(dataset, "test")))
    return {str(path): sha256_file(path) for path in sorted(set(files))}


def samples_text(scores: list) -> str:
    """One JSON line per tested item."""
    return "".join(json.dumps(asdict(score), ensure_ascii=False) + "\n" for score in scores)


def write_outputs(cfg, pair, results: list, data_files: bool) -> Path:
    """Write results.json, table.md and one samples_<task>.jsonl per task into cfg.out (dropping an earlier run's
    samples files of other tasks); return results.json."""
    summaries = [summarize(result) for result in results]
    files = {samples_name(result.task): samples_text(result.scores) for result in results}
    files["table.md"] = format_table(cfg.model, summaries, cfg.threshold, cfg.samples, cfg.reference, cfg.sampler)
    model_hash = sha256_dir(pair.model_dir)
    same = pair.model_dir.resolve() == pair.reference_dir.resolve()
    settings = {
        **cfg.model_dump(mode="json"),
        **device_record(cfg.device, cfg.dtype),
        "dusk_version": __version__,
        "model_dir": str(pair.model_dir),
        "model_sha256": model_hash,
        "reference_dir": str(pair.reference_dir),
        "reference_sha256": model_hash if same else sha256_dir(pair.reference_dir),
        "data_files": data_hashes([r.task for r in results]) if data_files else {},
    }
    document = {
        "tasks": {s.task: asdict(s) for s in summaries},
        "reading": reading(cfg.threshold, cfg.sampler),
        "settings": settings,
    }
    files[RESULTS] = json.dumps(document, indent=2) + "\n"
    return write_run_files(Path(cfg.out), files, "contamination")
