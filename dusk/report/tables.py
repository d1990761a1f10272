"""Render report data as Markdown and as one self-contained HTML page (inline CSS, plots as base64 PNG).

Scores print as percentages with two decimals, as the paper prints them, each with its standard error
(`74.20 ± 4.38`). A column's best is bold only when it is ahead of every other row by more than the noise (the rule
in dusk.report.significance, stated in the footer). Under each table, lines generated from the numbers say what the
table shows (each row's change from the first, and whether it exceeds the noise), which tops are within noise and
which leads exceed it, and the items each score rests on. Model names link to their directories and the models table
to their cards, by paths relative to the report's folder (`base`), so a run directory can be moved whole.

    dusk report --run-dir runs/tiny --out runs/tiny/report
"""

import base64
import html as html_lib
import os
from pathlib import Path
from urllib.parse import quote

from dusk.report.data import COLUMNS, SUBSTITUTE_NOTE, ReportData, ScoreRow, Table
from dusk.report.measures import MeasureTable, notes
from dusk.report.significance import RULE, Verdict, difference_stderr, format_estimate, is_ahead, resolvable_gap

PLOT_TITLES = {
    "loss_curves": "Training loss per stage",
    "heldout_curves": "Held-out loss during training",
    "measures": "Held-out measures per model (± 1 stderr)",
    "task_bars": "Scores per task and model (± 1 stderr)",
}
TITLE = dict(COLUMNS)


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def score_text(row: ScoreRow, task: str) -> str:
    """A cell: the score and its standard error in percent points (`74.20 ± 4.38`), `-` when not scored."""
    return format_estimate(row.estimate(task), scale=100, decimals=2)


def _cells(table: Table, index: int, row: ScoreRow) -> list[tuple[str, bool]]:
    """(text, is_best) per score column."""
    return [(score_text(row, task), table.is_best(task, index)) for task, _title in COLUMNS]


def _headers(table: Table) -> list[str]:
    first = ["Model", "Size", "Type"] if table.main else ["Model"]
    return first + [title for _task, title in COLUMNS]


def _labels(table: Table, indexes: list[int]) -> str:
    return "all rows" if len(indexes) == len(table.rows) else ", ".join(table.rows[i].label for i in indexes)


def _lead(table: Table, task: str, verdict: Verdict) -> str:
    """`ARC by 19.39 ± 6.36 points over base`: the lead of the column's clear best and the stderr of that lead."""
    best, second = table.rows[verdict.best].estimate(task), table.rows[verdict.runner_up].estimate(task)
    gap, se = 100 * (best.value - second.value), 100 * difference_stderr(best, second)
    return f"{TITLE[task]} by {gap:.2f} ± {se:.2f} points over {table.rows[verdict.runner_up].label}"


def noise_line(table: Table) -> str | None:
    """One line from the numbers: the columns whose top is within noise (not ranked), those that cannot be ranked
    for want of a standard error, and the leads beyond the noise."""
    tied: dict[str, list[str]] = {}  # the tied rows' labels -> the columns where they tie
    unknown: list[str] = []  # columns whose top rows have no stderr
    leads: dict[str, list[str]] = {}  # the leading row's label -> its leads
    for task, title in COLUMNS:
        verdict = table.verdict(task)
        if verdict.best is not None:
            leads.setdefault(table.rows[verdict.best].label, []).append(_lead(table, task, verdict))
        elif any(table.rows[i].stderrs.get(task) is None for i in verdict.tied):
            unknown.append(title)
        elif verdict.tied:
            tied.setdefault(_labels(table, verdict.tied), []).append(title)
    parts = []
    if tied:
        groups = "; ".join(f"{', '.join(titles)} ({labels})" for labels, titles in tied.items())
        parts.append(f"Within noise at the top, so not ranked: {groups}.")
    if unknown:
        parts.append(f"Not ranked, no standard error (fewer than 2 items per score): {', '.join(unknown)}.")
    if leads:
        groups = "; ".join(f"{label} in {', '.join(found)}" for label, found in leads.items())
        parts.append(f"Ahead beyond noise (95%): {groups}.")
    return " ".join(parts) or None


def _change(table: Table, task: str, reference: int, index: int) -> str:
    """`sft +20.60 ± 2.60 (beyond noise)`: one row's difference from the reference row in percent points."""
    a, b = table.rows[index].estimate(task), table.rows[reference].estimate(task)
    se = difference_stderr(a, b)
    gap = 100 * (a.value - b.value)
    if se is None:
        return f"{table.rows[index].label} {gap:+.2f} (no stderr)"
    beyond = is_ahead(a, b) or is_ahead(b, a)
    return f"{table.rows[index].label} {gap:+.2f} ± {100 * se:.2f} ({'beyond' if beyond else 'within'} noise)"


def change_line(table: Table) -> str | None:
    """What the table shows, from the numbers: each row's change from the first row on the first column that two
    rows score (H6 when it is there), and whether the change exceeds 1.96 standard errors of the difference."""
    for task, title in COLUMNS:
        scored = [i for i, row in enumerate(table.rows) if row.values.get(task) is not None]
        if len(scored) >= 2:
            reference, others = scored[0], scored[1:]
            changes = ", ".join(_change(table, task, reference, i) for i in others)
            return f"{title} change from {table.rows[reference].label}, in points: {changes}."
    return None


def item_counts(table: Table, task: str) -> list[int]:
    """The distinct item counts of a column's scores, smallest first (empty when no row records one)."""
    return sorted({n for row in table.rows if (n := row.ns.get(task)) is not None})


def items_line(table: Table) -> str | None:
    """The items each column's scores rest on (a range when the rows differ)."""
    parts = []
    for task, title in COLUMNS:
        ns = item_counts(table, task)
        if ns:
            parts.append(f"{title} {ns[0]}" if len(ns) == 1 else f"{title} {ns[0]}-{ns[-1]}")
    return f"Items per score: {', '.join(parts)}." if parts else None


def resolution_line(table: Table) -> str | None:
    """What differences these item counts can resolve, from the counts alone: per column the gap two scores near
    50% must exceed to be beyond noise (dusk.report.significance.resolvable_gap), at the table's smallest n."""
    fewest = {task: counts[0] for task, _ in COLUMNS if (counts := item_counts(table, task))}
    tasks = [task for task, _ in COLUMNS if task != "h6"]
    gaps: dict[str, list[str]] = {}  # the gap's text -> the columns with it
    for task, title in COLUMNS:
        counts = [fewest.get(t) for t in tasks] if task == "h6" else [fewest.get(task)]
        if task in fewest and None not in counts and (gap := resolvable_gap(counts)) is not None:
            gaps.setdefault(f"{100 * gap:.2f}", []).append(title)
    if not gaps:
        return None
    parts = "; ".join(f"{gap} on {', '.join(titles)}" for gap, titles in gaps.items())
    return (
        f"What these items can resolve: two scores near 50% are beyond noise only when they differ by more than "
        f"(points) {parts} (1.96 × √2 × 0.5/√(n − 1) for n items per task); a smaller difference cannot be told "
        "from noise at this size."
    )


def _notes(table: Table) -> list[str]:
    lines = (change_line(table), noise_line(table), items_line(table), resolution_line(table))
    return [line for line in lines if line]


def _footer(data: ReportData) -> list[str]:
    settings = "; ".join(data.settings) or "no evaluation in this run"
    return [
        f"Evaluation settings: {settings}.",
        RULE,
        SUBSTITUTE_NOTE,
        f"Recipe {data.recipe}, run {data.run_id} (started {data.started}, finished {data.finished or '-'}), "
        f"dusk {data.dusk_version}. Every number is in the run directory's results.sqlite.",
    ]


CONTAMINATION_TITLE = "Contamination test (the paper's Table 9 layout)"
CONTAMINATION_COLUMNS = [(task, title) for task, title in COLUMNS if task != "h6"]
CONTAMINATION_TASKS = {"mmlu": ("mmlu", "mmlu_all")}  # the contamination test may name MMLU either way


def _contamination_caption(data: ReportData) -> str:
    thresholds = {item["threshold"] for item in data.contamination if item["threshold"] is not None}
    threshold = thresholds.pop() if len(thresholds) == 1 else 0.1
    return (
        f"Share of tested items (%) whose result is below {threshold}: the model finds the real text easier than "
        "the reference's continuations of its first 40%. Near 0 = no sign of contamination; high = likely trained "
        "on the benchmark. n items per task in parentheses."
    )


def _contamination_rows(data: ReportData) -> list[list[str]]:
    rows = []
    for item in data.contamination:
        cells = [item["model"], item["reference"]]
        for task, _title in CONTAMINATION_COLUMNS:
            name = next((n for n in CONTAMINATION_TASKS.get(task, (task,)) if n in item["tasks"]), None)
            value = item["tasks"].get(name) if name else None
            cells.append("-" if value is None else f"{percent(value)} ({item['n'][name]})")
        rows.append(cells)
    return rows


def _contamination_headers() -> list[str]:
    return ["Model", "Reference"] + [title for _task, title in CONTAMINATION_COLUMNS]


# Markdown ---------------------------------------------------------------------------------------------------------
def _md_table(headers: list[str], rows: list[list[str]], text_columns: int = 1) -> list[str]:
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i < text_columns else "---:" for i in range(len(headers))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _md_score_table(table: Table) -> list[str]:
    rows = []
    for index, row in enumerate(table.rows):
        first = [row.label, row.size, row.type] if table.main else [row.label]
        rows.append(first + [f"**{text}**" if best else text for text, best in _cells(table, index, row)])
    table_lines = _md_table(_headers(table), rows, 3 if table.main else 1)
    notes = [f"{line}  " for line in _notes(table)]
    return [f"### {table.name}", "", table.caption, "", *table_lines, "", *notes, *([""] if notes else [])]


def _measure_cells(table: MeasureTable) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of a measure table (a row's note, such as its reference, follows its label)."""
    headers = ["Model", *(column.title for column in table.columns)]
    rows = []
    for row in table.rows:
        label = f"{row.label} ({row.note})" if row.note else row.label
        rows.append([label, *(table.cell(row, column) for column in table.columns)])
    return headers, rows


def _md_measure_table(table: MeasureTable) -> list[str]:
    headers, rows = _measure_cells(table)
    notes_ = [f"{line}  " for line in notes(table)]
    return [f"### {table.title}", "", *_md_table(headers, rows), "", *notes_, ""]


MODELS_TITLE = "Models of this run"


MODELS_HEADERS = ["Stage", "Kind", "What was done (its model card)", "Card"]
TRACKER_HEADER = "Tracker run"


def _has_trackers(data: ReportData) -> bool:
    """Whether any model of the run logged to an experiment tracker (the models table then shows its run ids)."""
    return any(m.tracker_run for m in data.models)


def markdown(data: ReportData, images: dict[str, bytes], base: Path | None = None) -> str:
    """The report as Markdown; links are relative to `base` (the report's folder) when given."""
    lines = [f"# {data.title}", ""]
    for measure in data.measures:
        lines += _md_measure_table(measure)
    for table in data.tables:
        if table.rows or not data.measures:
            lines += _md_score_table(table)
    if data.contamination:
        lines += [f"### {CONTAMINATION_TITLE}", "", _contamination_caption(data), ""]
        lines += _md_table(_contamination_headers(), _contamination_rows(data), 2) + [""]
    for name in images:
        lines += [f"### {PLOT_TITLES.get(name, name)}", "", f"![{name}]({name}.png)", ""]
    if data.models:
        trackers = _has_trackers(data)
        rows = [
            [m.stage, m.kind, m.summary, f"[card]({href(m.card, base)})" if m.card else "-"]
            + ([m.tracker_run or "-"] if trackers else [])
            for m in data.models
        ]
        headers = MODELS_HEADERS + ([TRACKER_HEADER] if trackers else [])
        lines += [f"### {MODELS_TITLE}", "", *_md_table(headers, rows, len(headers)), ""]
    lines += ["---", ""] + [f"{line}  " for line in _footer(data)]
    return "\n".join(lines) + "\n"


# HTML -------------------------------------------------------------------------------------------------------------
CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2rem auto; max-width: 1250px;
       color: #1f2328; padding: 0 1rem; }
h1 { font-size: 1.6rem; border-bottom: 1px solid #d0d7de; padding-bottom: .4rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; }
p.caption { color: #57606a; margin: .2rem 0 .6rem; }
p.note { color: #57606a; margin: .1rem 0; font-size: .92rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-variant-numeric: tabular-nums; }
th, td { padding: .35rem .7rem; border-bottom: 1px solid #d0d7de; }
th { background: #f6f8fa; text-align: right; font-weight: 600; }
th:first-child, td:first-child { text-align: left; }
td { text-align: right; white-space: nowrap; }
td.text { text-align: left; color: #57606a; }
th.text { text-align: left; }
td.best { font-weight: 700; }
img { max-width: 100%; border: 1px solid #d0d7de; border-radius: 4px; }
footer { margin-top: 2rem; color: #57606a; font-size: .9rem; border-top: 1px solid #d0d7de; padding-top: .6rem; }
"""


def _e(text: str) -> str:
    return html_lib.escape(str(text))


def href(path: str, base: Path | None, directory: bool = False) -> str:
    """A link to `path` from a page in `base` (relative when both are local paths), URL-quoted; a directory's ends
    in `/` so a browser lists it."""
    target = os.path.relpath(Path(path).resolve(), Path(base).resolve()) if base is not None else str(path)
    link = quote(Path(target).as_posix(), safe="/:")
    return link + "/" if directory and not link.endswith("/") else link


def _linked(text: str, path: str | None, base: Path | None, directory: bool = False) -> str:
    """`text` as an HTML link to `path`, or plain (escaped) when there is no path."""
    return f'<a href="{_e(href(path, base, directory))}">{_e(text)}</a>' if path else _e(text)


def _html_table(headers: list[str], rows: list[str], text_columns: int = 1) -> str:
    """A table whose first `text_columns` columns are left-aligned text, the rest right-aligned numbers."""
    head = "".join(
        f'<th class="text">{_e(h)}</th>' if i < text_columns else f"<th>{_e(h)}</th>" for i, h in enumerate(headers)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _html_score_table(table: Table, base: Path | None = None) -> str:
    rows = []
    for index, row in enumerate(table.rows):
        first = f"<td>{_linked(row.label, row.model_dir, base, directory=True)}</td>"
        if table.main:
            first += f'<td>{_e(row.size)}</td><td class="text">{_e(row.type)}</td>'
        cells = "".join(
            f'<td class="best">{_e(t)}</td>' if best else f"<td>{_e(t)}</td>" for t, best in _cells(table, index, row)
        )
        rows.append(f"<tr>{first}{cells}</tr>")
    caption = f'<p class="caption">{_e(table.caption)}</p>'
    notes = "".join(f'<p class="note">{_e(line)}</p>' for line in _notes(table))
    return f"<h2>{_e(table.name)}</h2>{caption}{_html_table(_headers(table), rows, 3 if table.main else 1)}{notes}"


def _html_measure_table(table: MeasureTable) -> str:
    headers, rows = _measure_cells(table)
    body = ["<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in rows]
    lines = "".join(f'<p class="note">{_e(line)}</p>' for line in notes(table))
    return f"<h2>{_e(table.title)}</h2>{_html_table(headers, body)}{lines}"


def _html_models(data: ReportData, base: Path | None) -> str:
    """The models table: each stage links its model directory, then its card's account, the card, its tracker run."""
    trackers = _has_trackers(data)
    rows = []
    for m in data.models:
        cells = [_linked(m.stage, m.path, base, directory=True), _e(m.kind), _e(m.summary)]
        cells.append(_linked("README.md", m.card, base) if m.card else "-")
        cells += [_e(m.tracker_run or "-")] if trackers else []
        rows.append("<tr>" + "".join(f'<td class="text">{cell}</td>' for cell in cells) + "</tr>")
    headers = MODELS_HEADERS + ([TRACKER_HEADER] if trackers else [])
    return f"<h2>{_e(MODELS_TITLE)}</h2>" + _html_table(headers, rows, len(headers))


def html(data: ReportData, images: dict[str, bytes], base: Path | None = None) -> str:
    """The report as one self-contained HTML page; links are relative to `base` (the report's folder) when given."""
    parts = [f"<h1>{_e(data.title)}</h1>"]
    parts += [_html_measure_table(measure) for measure in data.measures]
    parts += [_html_score_table(table, base) for table in data.tables if table.rows or not data.measures]
    if data.contamination:
        rows = [
            "<tr>"
            + "".join(f'<td class="text">{_e(c)}</td>' if i < 2 else f"<td>{_e(c)}</td>" for i, c in enumerate(row))
            + "</tr>"
            for row in _contamination_rows(data)
        ]
        parts.append(f'<h2>{_e(CONTAMINATION_TITLE)}</h2><p class="caption">{_e(_contamination_caption(data))}</p>')
        parts.append(_html_table(_contamination_headers(), rows, 2))
    for name, png in images.items():
        encoded = base64.b64encode(png).decode()
        parts.append(
            f'<h2>{_e(PLOT_TITLES.get(name, name))}</h2><img alt="{_e(name)}" src="data:image/png;base64,{encoded}">'
        )
    if data.models:
        parts.append(_html_models(data, base))
    footer = "".join(f"<p>{_e(line)}</p>" for line in _footer(data))
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(data.title)}</title>'
        f"<style>{CSS}</style></head>\n<body>\n{body}\n<footer>{footer}</footer>\n</body></html>\n"
    )
