"""Reports: every number printed is the store's with its standard error, a clear best per column is bold, the HTML
stands alone."""

import re

from recipe_fixtures import TinyRun, tiny_run  # noqa: F401

from dusk.report import COLUMNS, ReportData, ScoreRow, Table, build_report, format_size, write_report
from dusk.report.significance import Estimate, format_estimate
from dusk.report.tables import html, markdown, percent
from dusk.store import open_store


def table(values: list[dict[str, float | None]], stderr: float | None = 0.01) -> Table:
    rows = [
        ScoreRow(f"m{i}", f"m{i}", f"e{i}", "135M", "Type", v, dict.fromkeys(v, stderr)) for i, v in enumerate(values)
    ]
    return Table("t", "caption", rows)


def data(tables: list[Table]) -> ReportData:
    return ReportData("T", "r", 1, "start", "end", "0.1.0", tables, {}, ["mode harness, subset tiny, dtype float32"])


def test_best_per_column_is_bold_and_ties_or_single_rows_are_not() -> None:
    t = table([{"h6": 0.5, "arc_challenge": 0.25}, {"h6": 0.75, "arc_challenge": 0.25}, {"h6": None}])
    text = markdown(data([t]), {})
    assert "| m1 | **75.00 ± 1.00** | 25.00 ± 1.00 |" in text  # clear best H6 bold; equal ARC: none singled out
    assert "| m0 | 50.00 ± 1.00 | 25.00 ± 1.00 |" in text and "| m2 | - | - |" in text
    page = html(data([t]), {})
    assert page.count('class="best"') == 1 and '<td class="best">75.00 ± 1.00</td>' in page
    assert "subset tiny" in text and "not with the Open LLM Leaderboard to the decimal" in page


def test_sizes_and_percentages() -> None:
    assert [format_size(n) for n in (None, 134_515_008, 10_700_000_000, 400_000)] == ["-", "135M", "10.7B", "0.40M"]
    assert percent(0.74203) == "74.20" and percent(None) == "-"


def test_the_reports_numbers_are_the_stores(tiny_run: TinyRun, tmp_path) -> None:  # noqa: F811
    store = open_store(tiny_run.run_dir)
    report = build_report(store, tiny_run.summary.run_id)
    markdown_path, _html = write_report(store, tmp_path, tiny_run.summary.run_id)
    text = markdown_path.read_text()
    stages = {row["name"]: row for row in store.stages(tiny_run.summary.run_id)}
    checked = 0
    for t in report.tables:
        for row in t.rows:
            headline = {s.task: s for s in store.scores(stages[row.eval_stage]["cache_key"]) if s.headline}
            assert set(row.values) == {task for task, _ in COLUMNS}
            for task, _title in COLUMNS:
                assert row.values[task] == headline[task].value, (t.name, row.label, task)
                assert row.stderrs[task] == headline[task].stderr
                assert row.ns[task] == headline[task].n
                checked += 1
            printed = re.search(rf"^\| {re.escape(row.label)} \|(.*)$", text, re.M).group(1)
            cells = [c.strip().strip("*") for c in printed.split("|") if c.strip()]
            estimates = [Estimate(headline[task].value, headline[task].stderr) for task, _ in COLUMNS]
            assert cells[-len(COLUMNS) :] == [format_estimate(estimate, 100) for estimate in estimates]
    assert checked >= 6 * len(COLUMNS)
    h6 = [s for s in store.scores(stages["evals/final"]["cache_key"]) if s.task == "h6"][0]
    parts = {s.task: s.value for s in store.scores(stages["evals/final"]["cache_key"]) if s.headline and s.task != "h6"}
    assert abs(h6.value - sum(parts.values()) / 6) < 1e-12  # H6 is the plain mean of the six columns
    assert h6.stderr is None  # tiny.yaml scores 1 item per task: no task has a stderr, so H6 has none either
    assert "Items per score: H6 (Avg.)" in text and "Not ranked, no standard error" in text and "**" not in text
