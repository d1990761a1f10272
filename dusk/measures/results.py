"""What a measure writes: results.json with its columns (what each number is, and which way is better), one row per
model with `value`, `stderr` and `n` per column, and the per-item values behind them (for paired comparisons).

    python -c "from dusk.measures.results import read_results; print(read_results('runs/ppl')['rows'][0]['label'])"
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dusk.errors import DuskError
from dusk.run_output import RESULTS, write_run_files


@dataclass(frozen=True)
class Column:
    """One measured quantity of a measure's table."""

    key: str
    title: str
    higher_is_better: bool
    decimals: int = 3
    paired: bool = False  # a paired difference from the first row (the first row has none)
    group: str = ""  # the dataset the column measures, when a measure has several


@dataclass
class MeasureRow:
    """One model's numbers: per column {value, stderr, n}; per-item values under `items` (kept out of the store)."""

    label: str
    scores: dict[str, dict]
    items: dict[str, list[float]] = field(default_factory=dict)
    note: str = ""  # e.g. which reference a preference row was scored against


def label_of(model_arg: str) -> str:
    """A row label for a model argument: the stage name for a recipe stage's artifact (…/artifacts/<stage>[/final]),
    else the argument as given (a built-in name or a directory)."""
    parts = Path(model_arg).parts
    if "artifacts" in parts[:-1]:
        index = len(parts) - 1 - parts[::-1].index("artifacts")
        return "/".join(parts[index + 1 :]).removesuffix("/final")
    return model_arg


def write_results(out: Path, title: str, columns: list[Column], rows: list[MeasureRow], settings: dict) -> Path:
    """results.json (columns, rows with their numbers, settings) and items.json (the per-item values)."""
    document = {
        "title": title,
        "columns": [asdict(column) for column in columns],
        "rows": [{"label": r.label, "scores": r.scores, "note": r.note} for r in rows],
        "settings": settings,
    }
    items = {row.label: row.items for row in rows}
    files = {RESULTS: json.dumps(document, indent=1) + "\n", "items.json": json.dumps(items) + "\n"}
    write_run_files(Path(out), files, "measure")
    return Path(out)


def read_results(out: Path) -> dict:
    """A measure's results.json."""
    path = Path(out) / RESULTS
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DuskError(f"{path}: cannot read a measure's results ({exc})") from exc
    return document
