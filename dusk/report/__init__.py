"""Reports from the results store, as Markdown and a self-contained HTML page: `data` reads what a report shows,
`tables` and `plots` render it, `write` writes the files. This file only hands names on.

    dusk report --run-dir runs/tiny --out runs/tiny/report
"""

from dusk.report.data import COLUMNS, SUBSTITUTE_NOTE, ReportData, ScoreRow, Table, build_report, format_size
from dusk.report.write import write_report

__all__ = [
    "COLUMNS",
    "SUBSTITUTE_NOTE",
    "ReportData",
    "ScoreRow",
    "Table",
    "build_report",
    "format_size",
    "write_report",
]
