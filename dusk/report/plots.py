"""Report plots as PNG bytes (matplotlib, Agg backend): training loss per stage, and scores per task per model with
error bars of one standard error.

dusk report --run-dir runs/tiny --out runs/tiny/report   # writes loss_curves.png and task_bars.png
"""

import io
import math
from dataclasses import dataclass

from dusk.report.data import COLUMNS, ReportData


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(figure)
    return buffer.getvalue()


LOSS_PANELS = (  # (title, kinds): language-model losses and preference losses live on different scales
    ("next-token loss (pretraining, SFT)", ("pretrain", "sft")),
    ("DPO loss (DPO, sDPO)", ("dpo", "sdpo")),
)


def loss_curves(data: ReportData) -> bytes | None:
    """Loss against step, one line per training stage, one panel per kind of loss."""
    panels = [
        (title, {n: s for n, s in data.curves.items() if s.detail.get("kind") in kinds}) for title, kinds in LOSS_PANELS
    ]
    panels = [(title, curves) for title, curves in panels if curves]
    if not panels:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.0), squeeze=False)
    for axis, (title, curves) in zip(axes[0], panels, strict=True):
        for name, summary in curves.items():
            steps, losses = zip(*summary.curve, strict=True)
            axis.plot(steps, losses, label=name, linewidth=1.6, marker="o" if len(steps) < 30 else None, markersize=3)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("step")
        axis.set_ylabel("training loss")
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, ncols=2 if len(curves) > 6 else 1)
    figure.tight_layout()
    return _png(figure)


@dataclass(frozen=True)
class BarSeries:
    """One model's bars: per column of COLUMNS its score and standard error in percent (NaN where unknown)."""

    label: str
    scores: list[float]
    errors: list[float]


def bar_series(data: ReportData) -> list[BarSeries]:
    """The main table's scored models, as the task bars draw them (an unscored task draws no bar or error bar)."""
    table_rows = data.tables[0].rows if data.tables else []
    rows = [row for row in table_rows if any(v is not None for v in row.values.values())]
    series = []
    for row in rows:
        estimates = [row.estimate(task) for task, _title in COLUMNS]
        scores = [math.nan if e.value is None else 100 * e.value for e in estimates]
        errors = [math.nan if e.stderr is None else 100 * e.stderr for e in estimates]
        series.append(BarSeries(row.label, scores, errors))
    return series


def task_bars(data: ReportData) -> bytes | None:
    """Grouped bars with ± 1 standard error: for each task (and H6), one bar per model of the main table."""
    series = bar_series(data)
    if not series:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(max(9, 1.2 * len(COLUMNS) + 0.3 * len(series)), 4.4))
    width = 0.8 / len(series)
    for index, bars in enumerate(series):
        xs = [i + (index - (len(series) - 1) / 2) * width for i in range(len(COLUMNS))]
        axis.bar(xs, bars.scores, width=width, label=bars.label, yerr=bars.errors, capsize=2,
                 error_kw={"elinewidth": 0.9, "ecolor": "#333333"})  # fmt: skip
    axis.set_xticks(range(len(COLUMNS)), [title for _task, title in COLUMNS])
    axis.set_ylabel("score (%), error bar ± 1 stderr")
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8, ncols=min(4, len(series)), loc="upper center", bbox_to_anchor=(0.5, -0.1))
    return _png(figure)


def heldout_curves(data: ReportData) -> bytes | None:
    """Held-out loss against step for training stages that evaluated during training (e.g. the DUS recovery)."""
    curves = {name: s.detail.get("eval_curve", []) for name, s in data.curves.items()}
    curves = {name: points for name, points in curves.items() if len(points) > 1}
    if not curves:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.2, 4.0))
    for name, points in curves.items():
        steps = [point[0] for point in points]
        losses = [point[1] for point in points]
        errors = [point[2] if len(point) > 2 and point[2] is not None else math.nan for point in points]
        axis.errorbar(steps, losses, yerr=errors, label=name, linewidth=1.6, marker="o", markersize=3, capsize=2)
    axis.set_xlabel("step")
    axis.set_ylabel("held-out loss (mean NLL per token, ± 1 stderr)")
    axis.xaxis.get_major_locator().set_params(integer=True)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return _png(figure)


def measure_panels(data: ReportData) -> bytes | None:
    """One panel per measure table and dataset: each model's value with ± 1 standard error (its first column)."""
    panels = []
    for table in data.measures:
        for group in dict.fromkeys(c.group for c in table.columns):
            column = next(c for c in table.columns if c.group == group and not c.paired)
            points = [(r.label, r.estimates[column.key]) for r in table.rows if column.key in r.estimates]
            if points:
                panels.append((f"{table.title}: {column.title}", points))
    if not panels:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for axis, (title, points) in zip(axes[0], panels, strict=True):
        labels = [label for label, _e in points]
        values = [e.value for _label, e in points]
        errors = [e.stderr or 0.0 for _label, e in points]
        axis.errorbar(values, range(len(points)), xerr=errors, fmt="o", capsize=3)
        axis.set_yticks(range(len(points)), labels, fontsize=8)
        axis.invert_yaxis()
        axis.set_title(title, fontsize=9)
        axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return _png(figure)


def render_all(data: ReportData) -> dict[str, bytes]:
    """Every plot that has data, by name."""
    images = {
        "measures": measure_panels(data),
        "heldout_curves": heldout_curves(data),
        "loss_curves": loss_curves(data),
        "task_bars": task_bars(data),
    }
    return {name: png for name, png in images.items() if png is not None}
