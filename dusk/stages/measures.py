"""The measure stage kinds: `perplexity` (held-out perplexity of text) and `heldout` (held-out loss on instruction
data, reward accuracy and margin on preference data). Each scores any models (stages or external) on the same
held-out items, with standard errors, so base, trained and merged models get one measure the report can compare.

    python -c "from dusk.stages.measures import MEASURE_KINDS; print([kind.name for kind in MEASURE_KINDS])"
"""

from pathlib import Path
from typing import Any

from dusk.stages.adapters import set_out
from dusk.stages.data import data_paths
from dusk.stages.kind import StageKind
from dusk.store import Score, StageResult


def measure_result(artifact: Path, _cfg: Any = None) -> StageResult:
    """A measure's numbers for the store: one Score per (row, column), task = the row's label, metric = the column;
    the columns, row order and notes go into the settings, so the report can lay the table out again."""
    from dusk.measures.results import read_results

    document = read_results(artifact)
    scores = []
    for row in document["rows"]:
        for column, score in row["scores"].items():
            scores.append(Score(row["label"], column, score["value"], score.get("stderr"), score.get("n")))
    settings = {
        "mode": document["settings"]["measure"],
        "title": document["title"],
        "columns": document["columns"],
        "rows": [{"label": row["label"], "note": row.get("note", "")} for row in document["rows"]],
        **{k: v for k, v in document["settings"].items() if k != "measure"},
    }
    return StageResult(scores=scores, settings=settings)


def _perplexity_schema() -> type:
    from dusk.measures.config import PerplexityConfig

    return PerplexityConfig


def _perplexity_run(cfg: Any) -> Path:
    from dusk.measures.perplexity import run

    return run(cfg)


def _heldout_schema() -> type:
    from dusk.measures.config import HeldoutConfig

    return HeldoutConfig


def _heldout_run(cfg: Any) -> Path:
    from dusk.measures.heldout import run

    return run(cfg)


def _heldout_data_files(cfg: Any) -> list[Path]:
    return [path for source in [*cfg.data, *cfg.exclude] for path in data_paths(source)]


PERPLEXITY = StageKind(
    name="perplexity",
    summary="held-out perplexity of models on a text, ± stderr over sequences (dusk perplexity)",
    schema=_perplexity_schema,
    run=_perplexity_run,
    prepare=set_out,
    collect=measure_result,
    inputs=("models",),
    data_inputs=("data", "exclude"),
    data_files=lambda cfg: [path for source in [cfg.data, *cfg.exclude] for path in data_paths(source)],
    artifact="eval",
)
HELDOUT = StageKind(
    name="heldout",
    summary="held-out loss (instruction data) or reward accuracy and margin (preference data) of models (dusk heldout)",
    schema=_heldout_schema,
    run=_heldout_run,
    prepare=set_out,
    collect=measure_result,
    inputs=("models", "reference"),
    data_inputs=("data", "exclude"),
    data_files=_heldout_data_files,
    artifact="eval",
)
MEASURE_KINDS = [PERPLEXITY, HELDOUT]
