"""The measure stages' tables (held-out perplexity, held-out loss, reward accuracy and margin) as the report shows
them, read back from the store, and the line under each table that says, from the numbers, what it shows.

Rows are compared with their paired differences (the same held-out items scored by both models): a difference is
"beyond noise" when it is further from 0 than 1.96 of its standard errors.

    python -c "from dusk.report.measures import measure_tables; from dusk.store import open_store; \
print(measure_tables(open_store('runs/solar-mini', must_exist=True), 1))"
"""

from dataclasses import dataclass, field

from dusk.report.significance import Estimate, Z, format_estimate
from dusk.store import Store

MEASURE_KINDS = ("perplexity", "heldout")


@dataclass(frozen=True)
class MeasureColumn:
    key: str
    title: str
    higher_is_better: bool
    decimals: int
    paired: bool
    group: str


@dataclass
class MeasureRow:
    label: str
    note: str
    estimates: dict[str, Estimate] = field(default_factory=dict)


@dataclass
class MeasureTable:
    stage: str
    title: str
    mode: str  # perplexity, heldout_instruction, heldout_preference
    columns: list[MeasureColumn]
    rows: list[MeasureRow]
    settings: dict

    def paired_reference(self, column: MeasureColumn) -> MeasureRow | None:
        """The row the paired differences of `column` are taken from: the first row scored in its group."""
        main = next((c for c in self.columns if c.group == column.group and not c.paired), None)
        scored = [r for r in self.rows if main is not None and main.key in r.estimates]
        return scored[0] if scored else None

    def cell(self, row: MeasureRow, column: MeasureColumn) -> str:
        estimate = row.estimates.get(column.key)
        if estimate is None or estimate.value is None:
            return "(reference)" if column.paired and row is self.paired_reference(column) else "-"
        return format_estimate(estimate, decimals=column.decimals)


def _table(store: Store, stage: str, key: str) -> MeasureTable | None:
    settings = store.settings(key) or {}
    if "columns" not in settings:
        return None
    columns = [MeasureColumn(c["key"], c["title"], c["higher_is_better"], c["decimals"], c["paired"], c["group"])
               for c in settings["columns"]]  # fmt: skip
    rows = {r["label"]: MeasureRow(r["label"], r.get("note", "")) for r in settings["rows"]}
    for score in store.scores(key):
        if score.task in rows:
            rows[score.task].estimates[score.metric] = Estimate(score.value, score.stderr, score.n)
    title = settings.get("title") or stage
    return MeasureTable(stage, title, settings.get("mode", ""), columns, list(rows.values()), settings)


def measure_tables(store: Store, run_id: int) -> list[MeasureTable]:
    """Every measure stage of the run that finished, in run order."""
    tables = []
    for row in store.stages(run_id):
        if row["kind"] in MEASURE_KINDS and row["state"] in ("cached", "ran", "resumed") and row["cache_key"]:
            table = _table(store, row["name"], row["cache_key"])
            if table is not None:
                tables.append(table)
    return tables


def _verdict(diff: Estimate, higher_is_better: bool) -> str:
    if diff.stderr is None:
        return "no stderr"
    if abs(diff.value) <= Z * diff.stderr:
        return "within noise"
    better = (diff.value > 0) == higher_is_better
    return f"{'better' if better else 'worse'}, beyond noise"


def paired_lines(table: MeasureTable) -> list[str]:
    """Per paired column: each row's difference from the first row, ± its stderr, and whether it exceeds the noise."""
    lines = []
    for column in table.columns:
        reference = table.paired_reference(column)
        if not column.paired or reference is None:
            continue
        parts = []
        for row in table.rows:
            diff = row.estimates.get(column.key)
            if diff is None or diff.value is None:
                continue
            text = format_estimate(diff, decimals=column.decimals)
            parts.append(
                f"{row.label} {'+' if diff.value >= 0 else ''}{text} ({_verdict(diff, column.higher_is_better)})"
            )
        if parts:
            what = column.title.split(" Δ")[0]
            lines.append(f"{what}, paired difference from {reference.label}: {'; '.join(parts)}.")
    return lines


def reward_lines(table: MeasureTable) -> list[str]:
    """Preference tables: has each model moved from its reference? Its margin against 0 (the reference's own) and its
    reward accuracy against chance (0.5), each beyond the noise or not."""
    if table.mode != "heldout_preference":
        return []
    lines = []
    for column in table.columns:
        measure = column.key.rsplit(":", 1)[-1]
        if column.paired or measure not in ("margin", "accuracy"):
            continue
        chance = 0.5 if measure == "accuracy" else 0.0
        parts = []
        for row in table.rows:
            score = row.estimates.get(column.key)
            if score is None or score.value is None:
                continue
            shifted = Estimate(score.value - chance, score.stderr)
            verdict = _verdict(shifted, column.higher_is_better).replace("better", "toward the chosen answers")
            verdict = verdict.replace("worse", "toward the rejected answers")
            parts.append(f"{row.label} {format_estimate(score, decimals=column.decimals)} ({verdict})")
        if parts:
            against = "chance (0.5)" if measure == "accuracy" else "0, its reference's own"
            lines.append(f"{column.title} against {against}: {'; '.join(parts)}.")
    return lines


def best_lines(table: MeasureTable) -> list[str]:
    """For tables over several datasets: the best row on each by value, and the runner-up (how far apart they are
    beyond the noise is in the paired lines above, both being paired with the first row)."""
    groups = list(dict.fromkeys(c.group for c in table.columns if c.group))
    if len(groups) < 2:
        return []
    parts = []
    for group in groups:
        main = next(c for c in table.columns if c.group == group and not c.paired)
        scored = [r for r in table.rows if (e := r.estimates.get(main.key)) is not None and e.value is not None]
        if len(scored) >= 2:
            ranked = sorted(scored, key=lambda r: r.estimates[main.key].value, reverse=main.higher_is_better)
            parts.append(f"{group}: {ranked[0].label}, then {ranked[1].label}")
    return [f"Best {main.title.split(' ', 1)[1]} per dataset, by value: {'; '.join(parts)}."] if parts else []


def settings_line(table: MeasureTable) -> str:
    config = table.settings.get("config", {})
    if table.mode == "perplexity":
        return (f"{config.get('sequences')} sequences of {config.get('seq_len')} tokens from {config.get('data')}; "
                "± is one standard error over sequences.")  # fmt: skip
    records = table.settings.get("records", {})
    excluded = table.settings.get("excluded_as_training_data", {})
    counts = ", ".join(f"{name} {n} (of those left after excluding {excluded.get(name, 0)} training records)"
                       for name, n in records.items())  # fmt: skip
    unit = "pairs" if table.mode == "heldout_preference" else "examples"
    extra = f", beta {config.get('beta')}" if table.mode == "heldout_preference" else ""
    return f"Held-out {unit}: {counts}{extra}; ± is one standard error over {unit}."


def notes(table: MeasureTable) -> list[str]:
    """The lines under a measure table, all generated from its numbers and settings."""
    return [*reward_lines(table), *paired_lines(table), *best_lines(table), settings_line(table)]
