"""Render report data as Markdown and as one self-contained HTML page (inline CSS, plots as base64 PNG).

Scores print as percentages with two decimals, as the paper prints them; the best score of each column is bold.

    dusk report --run-dir runs/tiny --out runs/tiny/report
"""

import base64
import html as html_lib

from dusk.report.data import COLUMNS, SUBSTITUTE_NOTE, ReportData, Table

PLOT_TITLES = {"loss_curves": "Training loss per stage", "task_bars": "Scores per task and model"}


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _cells(table: Table, row) -> list[tuple[str, bool]]:
    """(text, is_best) per score column."""
    cells = []
    for task, _title in COLUMNS:
        value = row.values.get(task)
        cells.append((percent(value), table.is_best(task, value)))
    return cells


def _headers(table: Table) -> list[str]:
    first = ["Model", "Size", "Type"] if table.main else ["Model"]
    return first + [title for _task, title in COLUMNS]


def _footer(data: ReportData) -> list[str]:
    settings = "; ".join(data.settings) or "no evaluation in this run"
    return [
        f"Evaluation settings: {settings}.",
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
    for row in table.rows:
        first = [row.label, row.size, row.type] if table.main else [row.label]
        rows.append(first + [f"**{text}**" if best else text for text, best in _cells(table, row)])
    table_lines = _md_table(_headers(table), rows, 3 if table.main else 1)
    return [f"### {table.name}", "", table.caption, "", *table_lines, ""]


def markdown(data: ReportData, images: dict[str, bytes]) -> str:
    lines = [f"# {data.title}", ""]
    for table in data.tables:
        lines += _md_score_table(table)
    if data.contamination:
        lines += [f"### {CONTAMINATION_TITLE}", "", _contamination_caption(data), ""]
        lines += _md_table(_contamination_headers(), _contamination_rows(data), 2) + [""]
    for name in images:
        lines += [f"### {PLOT_TITLES.get(name, name)}", "", f"![{name}]({name}.png)", ""]
    lines += ["---", ""] + [f"{line}  " for line in _footer(data)]
    return "\n".join(lines) + "\n"


# HTML -------------------------------------------------------------------------------------------------------------
CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2rem auto; max-width: 1250px;
       color: #1f2328; padding: 0 1rem; }
h1 { font-size: 1.6rem; border-bottom: 1px solid #d0d7de; padding-bottom: .4rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; }
p.caption { color: #57606a; margin: .2rem 0 .6rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-variant-numeric: tabular-nums; }
th, td { padding: .35rem .7rem; border-bottom: 1px solid #d0d7de; }
th { background: #f6f8fa; text-align: right; font-weight: 600; }
th:first-child, td:first-child { text-align: left; }
td { text-align: right; }
td.text { text-align: left; color: #57606a; }
th.text { text-align: left; }
td.best { font-weight: 700; }
img { max-width: 100%; border: 1px solid #d0d7de; border-radius: 4px; }
footer { margin-top: 2rem; color: #57606a; font-size: .9rem; border-top: 1px solid #d0d7de; padding-top: .6rem; }
"""


def _e(text: str) -> str:
    return html_lib.escape(str(text))


def _html_table(headers: list[str], rows: list[str], text_columns: int = 1) -> str:
    """A table whose first `text_columns` columns are left-aligned text, the rest right-aligned numbers."""
    head = "".join(
        f'<th class="text">{_e(h)}</th>' if i < text_columns else f"<th>{_e(h)}</th>" for i, h in enumerate(headers)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _html_score_table(table: Table) -> str:
    rows = []
    for row in table.rows:
        first = f"<td>{_e(row.label)}</td>"
        if table.main:
            first += f'<td>{_e(row.size)}</td><td class="text">{_e(row.type)}</td>'
        cells = "".join(
            f'<td class="best">{_e(t)}</td>' if best else f"<td>{_e(t)}</td>" for t, best in _cells(table, row)
        )
        rows.append(f"<tr>{first}{cells}</tr>")
    caption = f'<p class="caption">{_e(table.caption)}</p>'
    return f"<h2>{_e(table.name)}</h2>{caption}{_html_table(_headers(table), rows, 3 if table.main else 1)}"


def html(data: ReportData, images: dict[str, bytes]) -> str:
    parts = [f"<h1>{_e(data.title)}</h1>"]
    parts += [_html_score_table(table) for table in data.tables]
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
    footer = "".join(f"<p>{_e(line)}</p>" for line in _footer(data))
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(data.title)}</title>'
        f"<style>{CSS}</style></head>\n<body>\n{body}\n<footer>{footer}</footer>\n</body></html>\n"
    )
