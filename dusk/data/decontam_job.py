"""The decontamination job (`dusk data decontaminate`): read the input records, pick the local or Spark engine to
apply the rules of `dusk.data.decontam`, and write the surviving records and the report.

    dusk data decontaminate flan_cot --out runs/flan_clean.jsonl --report runs/flan_report.json [--engine spark]
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from dusk.atomic import atomic_output_file
from dusk.data.decontam import DecontamConfig, benchmark_items_for, build_report, check_tasks, decide_local
from dusk.data.ngrams import NgramIndex
from dusk.data.registry import check_training_source, load_raw
from dusk.errors import DuskError


def dumps(record: dict) -> str:
    """The one JSON serialisation of an output line (both engines use it, so their outputs are byte-identical)."""
    return json.dumps(record, ensure_ascii=False)


def write_outputs(records: list[dict], dropped: dict, out: Path, report: dict, report_path: Path | None) -> Path:
    """Write surviving records (input order) and the report, each atomically."""
    with atomic_output_file(out) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for position, record in enumerate(records):
            if position not in dropped:
                handle.write(dumps(record) + "\n")
    if report_path is not None:
        with atomic_output_file(report_path) as tmp:
            tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


@dataclass(frozen=True)
class DecontaminateJob:
    """One `dusk data decontaminate` run."""

    input: str  # a dataset name or a JSON/JSONL file
    out: Path  # output JSONL (surviving records, unchanged)
    report: Path | None = None  # JSON report path (None: only printed)
    engine: str = "local"  # local | spark
    spark_master: str = "local[2]"  # Spark master URL (local[N], spark://host:port, yarn, k8s://...)
    rules: DecontamConfig = field(default_factory=DecontamConfig)  # what is matched and dropped


def load_input(name_or_path: str) -> tuple[list[dict], list[str]]:
    """Original records and, per record, its dataset (provenance.dataset when present, else the input's name)."""
    rows = load_raw(name_or_path)
    default = Path(name_or_path).stem if Path(name_or_path).suffix else str(name_or_path)
    groups = []
    for row in rows:
        provenance = row.fields.get("provenance")
        groups.append(
            str(provenance["dataset"]) if isinstance(provenance, dict) and "dataset" in provenance else default
        )
    return [row.fields for row in rows], groups


def run(job: DecontaminateJob) -> tuple[Path, dict]:
    """Decontaminate and dedup `job.input`; returns the output path and the report."""
    if job.engine not in ("local", "spark"):
        raise DuskError(f"unknown engine {job.engine!r}; expected local or spark")
    if job.engine == "spark":
        from dusk.data.spark import require_pyspark

        require_pyspark()
    check_tasks(job.rules.tasks)
    check_training_source(job.input)
    records, groups = load_input(job.input)
    rules = job.rules
    index = NgramIndex.build(benchmark_items_for(rules.tasks), rules.n, rules.min_words) if rules.tasks else None
    if job.engine == "spark":
        from dusk.data.spark import decide_spark

        dropped = decide_spark(records, index, job.rules, job.spark_master)
    else:
        dropped = decide_local(records, index, job.rules)
    report = build_report(records, groups, dropped, job.rules)
    report["index"] = index.stats() if index is not None else {}
    report["engine"] = job.engine
    return write_outputs(records, dropped, job.out, report, job.report), report
