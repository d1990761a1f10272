"""The data stage kinds: `mix` (a data mixture -> one JSONL, dusk data mix) and `decontaminate` (drop records that
overlap the H6 benchmarks, and duplicates; dusk data decontaminate). Both write OUT/data.jsonl, which later stages
read, next to their statistics.

    python -c "from dusk.stages.data import data_paths; print(data_paths('tinyshakespeare'))"
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dusk.errors import DuskError
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
def _decontam_schema() -> type:
    from dusk.data.decontam_job import DecontaminateJob

    return DecontaminateJob


def _no_report(raw: dict) -> dict:
    """The stage writes its report beside its data (OUT/report.json): a recipe cannot send it elsewhere."""
    if raw.get("report") is not None:
        raise DuskError(f"field report {raw['report']!r}: the stage writes its report beside its data (report.json)")
    return raw


def _decontam_prepare(fields: Any, paths: StagePaths, _resume: bool) -> Any:
    return fields.model_copy(update={"out": paths.out, "force": True})


def _decontam_run(job: Any) -> Path:
    """Run into a temporary directory renamed to OUT at the end (data.jsonl + report.json)."""
    from dusk.atomic import atomic_output_dir
    from dusk.data import decontam_job

    with atomic_output_dir(job.out, force=True) as tmp:
        decontam_job.run(job.model_copy(update={"out": artifact_data_file(tmp), "report": tmp / "report.json"}))
    return job.out


DECONTAMINATE = _data_kind(
    "decontaminate",
    "drop records that overlap the H6 benchmarks, and duplicates (dusk data decontaminate)",
    schema=_decontam_schema,
    run=_decontam_run,
    prepare=_decontam_prepare,
    data_inputs=("input",),
    data_files=lambda fields: data_paths(fields.input),
    normalize=_no_report,
    field_hints={"n": "the n-gram length is called ngram (as dusk data decontaminate --ngram)"},
)
