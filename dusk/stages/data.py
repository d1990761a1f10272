"""The data stage kinds: `mix` (a data mixture -> one JSONL, dusk data mix) and `decontaminate` (drop records that
overlap the H6 benchmarks, and duplicates; dusk data decontaminate). Both write OUT/data.jsonl, which later stages
read, next to their statistics.

    python -c "from dusk.stages.data import data_paths; print(data_paths('tinyshakespeare'))"
"""

import dataclasses
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dusk.stages.kind import StageKind, StagePaths
from dusk.stages.results import data_result

DATA_FILE = "data.jsonl"


def data_paths(value: str | None) -> list[Path]:
    """The files behind a `data` value: the file itself, or a registry dataset's local files."""
    if not value:
        return []
    path = Path(value).expanduser()
    if path.is_file():
        return [path]
    from dusk.data.registry import get_info, local_files

    return local_files(get_info(value))


def artifact_data_file(out: Path) -> Path:
    """The records file in a data stage's output directory: what later stages read."""
    return out / DATA_FILE


def _data_kind(name: str, summary: str, **options: Any) -> StageKind:
    """A kind writing OUT/data.jsonl: no model inputs, its statistics as scores."""
    return StageKind(
        name=name,
        summary=summary,
        collect=data_result,
        inputs=(),
        artifact="data",
        output=artifact_data_file,
        **options,
    )


# mix --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MixJob:
    """A mixture built by the runner into OUT/data.jsonl (+ OUT/stats.json)."""

    mixture: Any
    out: Path


def _mix_run(job: MixJob) -> Path:
    from dusk.atomic import atomic_output_dir
    from dusk.data.mixture import build, write_mixture

    records, stats = build(job.mixture)
    with atomic_output_dir(job.out, force=True) as tmp:
        write_mixture(records, artifact_data_file(tmp))
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return job.out


def _mix_data_files(mixture: Any) -> list[Path]:
    return [path for source in mixture.sources for path in data_paths(source.dataset)]


def _mix_schema() -> type:
    from dusk.data.mixture import Mixture

    return Mixture


MIX = _data_kind(
    "mix",
    "a data mixture: (dataset, max_examples or weight) sources -> one JSONL (dusk data mix)",
    schema=_mix_schema,
    run=_mix_run,
    prepare=lambda fields, paths, _resume: MixJob(fields, paths.out),
    data_files=_mix_data_files,
)


# decontaminate ----------------------------------------------------------------------------------------------------
@functools.cache
def _decontam_schema() -> type:
    from dusk.data.ngrams import MIN_WORDS
    from dusk.h6 import H6_DATASETS

    class DecontaminateStage(BaseModel):
        """`dusk data decontaminate` as a stage: drop records sharing an n-gram with a benchmark item, and dups."""

        model_config = ConfigDict(extra="forbid")
        input: str = Field(description="records to clean: a data stage, a dataset name or a JSON/JSONL file")
        n: int = Field(13, ge=1, description="n-gram length in words (lm-eval uses 13)")
        min_words: int = Field(
            MIN_WORDS, ge=1, description="shortest benchmark item matched whole (when shorter than n)"
        )
        tasks: list[str] = Field(list(H6_DATASETS), description="benchmarks whose scored items are matched")
        task_names: bool = Field(True, description="apply the paper's Table 8 FLAN task-name filter")
        dedup: bool = Field(True, description="drop exact duplicates (keep the first)")
        near_dedup: bool = Field(True, description="drop MinHash near-duplicates (keep the first)")
        threshold: float = Field(0.8, gt=0, le=1, description="near-duplicate Jaccard threshold")
        engine: Literal["local", "spark"] = Field("local", description="local, or spark for large corpora")
        spark_master: str = Field("local[2]", description="Spark master URL with engine: spark")

    return DecontaminateStage


def _decontam_prepare(fields: Any, paths: StagePaths, _resume: bool) -> Any:
    from dusk.data.decontam import DecontamConfig
    from dusk.data.decontam_job import DecontaminateJob

    rules = DecontamConfig(n=fields.n, min_words=fields.min_words, tasks=tuple(fields.tasks),
                           task_names=fields.task_names, dedup=fields.dedup, near_dedup=fields.near_dedup,
                           threshold=fields.threshold)  # fmt: skip
    return DecontaminateJob(fields.input, paths.out, None, fields.engine, fields.spark_master, rules)


def _decontam_run(job: Any) -> Path:
    """Run into a temporary directory renamed to OUT at the end (data.jsonl + report.json)."""
    from dusk.atomic import atomic_output_dir
    from dusk.data import decontam_job

    with atomic_output_dir(job.out, force=True) as tmp:
        decontam_job.run(dataclasses.replace(job, out=artifact_data_file(tmp), report=tmp / "report.json"))
    return job.out


DECONTAMINATE = _data_kind(
    "decontaminate",
    "drop records that overlap the H6 benchmarks, and duplicates (dusk data decontaminate)",
    schema=_decontam_schema,
    run=_decontam_run,
    prepare=_decontam_prepare,
    data_inputs=("input",),
    data_files=lambda fields: data_paths(fields.input),
)
