"""Write a report: report.md (+ PNG plots beside it) and a self-contained report.html, from the results store.

dusk report --run-dir runs/tiny --out runs/tiny/report
"""

from pathlib import Path

from dusk.atomic import atomic_output_file
from dusk.report.data import build_report
from dusk.report.plots import render_all
from dusk.report.tables import html, markdown
from dusk.store import Store


def write_report(store: Store, out: Path, run_id: int | None = None) -> tuple[Path, Path]:
    """Write report.md (+ PNG plots beside it) and a self-contained report.html into `out`."""
    data = build_report(store, run_id)
    out.mkdir(parents=True, exist_ok=True)
    images = render_all(data)
    for name, png in images.items():
        with atomic_output_file(out / f"{name}.png") as tmp:
            tmp.write_bytes(png)
    paths = []
    pages = (("report.md", markdown(data, images, out)), ("report.html", html(data, images, out)))
    for filename, text in pages:
        with atomic_output_file(out / filename) as tmp:
            tmp.write_text(text, encoding="utf-8")
        paths.append(out / filename)
    return paths[0], paths[1]
