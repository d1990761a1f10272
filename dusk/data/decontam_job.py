"""The decontamination job (`dusk data decontaminate`): read the input records, pick the local or Spark engine to
apply the rules of `dusk.data.decontam`, and write the surviving records and the report.

    dusk data decontaminate flan_cot --out runs/flan_clean.jsonl --report runs/flan_report.json [--engine spark]
"""

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dusk.atomic import atomic_output_file
from dusk.config_flags import comma_separated
from dusk.errors import DuskError
from dusk.h6 import H6_DATASETS


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


def _benchmarks(value: object) -> object:
    """`--tasks a,b` (or a list) as benchmark names, `none` as no screening; an empty list or unknown name refused."""
    names = comma_separated(value)
    if not isinstance(names, tuple):
        return value
    if names == ("none",):
        return ()
    if not names:
        raise ValueError(f"names no benchmark; give some of {', '.join(H6_DATASETS)} (or none)")
    from dusk.data.decontam import check_tasks

    try:
        check_tasks(names)
    except DuskError as exc:
        raise ValueError(str(exc)) from exc
    return names


class DecontaminateJob(BaseModel):
    """One decontamination: `dusk data decontaminate` (its flags come from these fields) and the recipe stage."""

    model_config = ConfigDict(extra="forbid")
    input: str = Field(description="records to clean: a dataset name, a JSON/JSONL file (in a recipe: a data stage)")
    out: Path = Field(description="output JSONL: the surviving records, fields unchanged, in input order")
    report: Path | None = Field(None, description="write the JSON report here (default: only printed)")
    force: bool = Field(False, description="replace --out and --report if they exist")
    engine: Literal["local", "spark"] = Field("local", description="local, or spark for large corpora")
    spark_master: str = Field("local[2]", description="Spark master URL with --engine spark (local[N], spark://...)")
    ngram: int = Field(13, ge=1, description="n-gram length in words (lm-eval uses 13)")
    min_words: int | None = Field(
        None, ge=1, description="shortest benchmark item matched whole when shorter than --ngram (default 8)"
    )
    tasks: str | tuple[str, ...] = Field(  # str: the flag's text, made a tuple by _benchmarks
        H6_DATASETS, description="comma-separated benchmarks whose scored items are matched (none: no screening)"
    )
    task_names: bool = Field(True, description="apply the SOLAR paper's Table 8 FLAN task-name filter")
    dedup: bool = Field(True, description="drop exact duplicates (keep the first)")
    near_dedup: bool = Field(True, description="drop MinHash near-duplicates (keep the first)")
    threshold: float = Field(0.8, gt=0, le=1, allow_inf_nan=False, description="near-duplicate Jaccard threshold")

    _tasks = field_validator("tasks", mode="before")(classmethod(lambda cls, value: _benchmarks(value)))

    def rules(self):
        """The settings of the pure rules (`dusk.data.decontam.DecontamConfig`)."""
        from dusk.data.decontam import DecontamConfig
        from dusk.data.ngrams import MIN_WORDS

        return DecontamConfig(
            n=self.ngram, min_words=MIN_WORDS if self.min_words is None else self.min_words, tasks=tuple(self.tasks),
            task_names=self.task_names, dedup=self.dedup, near_dedup=self.near_dedup, threshold=self.threshold,
        )  # fmt: skip


def load_input(name_or_path: str) -> tuple[list[dict], list[str]]:
    """Original records and, per record, its dataset (provenance.dataset when present, else the input's name)."""
    from dusk.data.registry import load_raw

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
    from dusk.data.decontam import benchmark_items_for, build_report, decide_local
    from dusk.data.ngrams import NgramIndex
    from dusk.data.registry import check_training_source

    if job.engine == "spark":
        from dusk.data.spark import require_pyspark

        require_pyspark()
    check_training_source(job.input)
    records, groups = load_input(job.input)
    rules = job.rules()
    index = NgramIndex.build(benchmark_items_for(rules.tasks), rules.n, rules.min_words) if rules.tasks else None
    if job.engine == "spark":
        from dusk.data.spark import decide_spark

        dropped = decide_spark(records, index, rules, job.spark_master)
    else:
        dropped = decide_local(records, index, rules)
    report = build_report(records, groups, dropped, rules)
    report["index"] = index.stats() if index is not None else {}
    report["engine"] = job.engine
    return write_outputs(records, dropped, job.out, report, job.report), report
