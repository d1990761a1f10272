"""Uncertainty in every number: cells print `value ± stderr`, a best is bold only when it beats every other row by
more than 1.96 x sqrt(se1^2 + se2^2), ties within noise are said to be ties, H6's stderr propagates its six tasks',
the task bars carry error bars, and the console tables of `dusk eval` and `dusk results` print ± too."""

import math
from pathlib import Path

import pytest

from dusk.eval.commands import format_table
from dusk.eval.harness import Aggregate, EvalItem, TaskRun, h6_aggregate, mmlu_aggregate
from dusk.eval.tasks import get_task
from dusk.h6 import H6_TASKS, HEADLINE_METRIC
from dusk.recipe_commands import format_run
from dusk.report import ReportData, ScoreRow, Table, build_report
from dusk.report import plots as plots_module
from dusk.report.plots import bar_series, task_bars
from dusk.report.significance import (
    RULE,
    Estimate,
    difference_stderr,
    format_estimate,
    is_ahead,
    leader,
    resolvable_gap,
)
from dusk.report.tables import change_line, html, markdown, noise_line, resolution_line
from dusk.store import Artifact, Score, StageResult, open_store


def one_column(*estimates: tuple[float | None, float | None]) -> Table:
    """A table whose H6 column holds these (value, stderr) pairs, one row each (m0, m1, ...)."""
    rows = [
        ScoreRow(f"m{i}", f"m{i}", None, "-", "Base", {"h6": value}, {"h6": stderr}, {"h6": 100})
        for i, (value, stderr) in enumerate(estimates)
    ]
    return Table("ablation", "caption", rows)


def report(table: Table) -> ReportData:
    return ReportData("T", "r", 1, "start", "end", "0.1.0", [table], {}, ["mode harness, subset tiny"])


def test_a_tie_within_noise_is_not_bold_and_the_table_says_so() -> None:
    # 50 ± 10 against 40 ± 10: the gap (10) is under 1.96 x sqrt(10^2 + 10^2) = 27.7 points
    t = one_column((0.50, 0.10), (0.40, 0.10))
    text, page = markdown(report(t), {}), html(report(t), {})
    assert "| m0 | 50.00 ± 10.00 |" in text and "| m1 | 40.00 ± 10.00 |" in text
    assert "**" not in text and 'class="best"' not in page
    assert "Within noise at the top, so not ranked: H6 (Avg.) (all rows)." in text
    assert "Ahead beyond noise" not in text and "Items per score: H6 (Avg.) 100." in text
    assert "H6 (Avg.) change from m0, in points: m1 -10.00 ± 14.14 (within noise)." in text


def test_a_clear_winner_is_bold_with_its_lead_and_the_noise_of_the_lead() -> None:
    t = one_column((0.40, 0.03), (0.80, 0.02))  # gap 40 points, se of the gap sqrt(3^2 + 2^2) = 3.61
    text, page = markdown(report(t), {}), html(report(t), {})
    assert "| m1 | **80.00 ± 2.00** |" in text and "| m0 | 40.00 ± 3.00 |" in text
    assert page.count('class="best"') == 1 and '<td class="best">80.00 ± 2.00</td>' in page
    assert "Ahead beyond noise (95%): m1 in H6 (Avg.) by 40.00 ± 3.61 points over m0." in text
    assert "Within noise" not in text
    assert "H6 (Avg.) change from m0, in points: m1 +40.00 ± 3.61 (beyond noise)." in text
    se = {"h6": 0.01, "gsm8k": 0.01}
    rows = [
        ScoreRow(label, label, None, "-", "Base", {"h6": v, "gsm8k": v}, se) for label, v in (("a", 0.9), ("b", 0.1))
    ]
    two = Table("t", "c", rows)  # one row leads in two columns: its leads are grouped
    assert noise_line(two) == (
        "Ahead beyond noise (95%): a in H6 (Avg.) by 80.00 ± 1.41 points over b, GSM8K by 80.00 ± 1.41 points over b."
    )


def test_the_rule_is_the_95_percent_test_on_the_difference() -> None:
    threshold = 1.96 * math.sqrt(0.03**2 + 0.03**2)  # 0.08315
    assert is_ahead(Estimate(0.5 + threshold + 1e-4, 0.03), Estimate(0.5, 0.03))
    assert not is_ahead(Estimate(0.5 + threshold - 1e-4, 0.03), Estimate(0.5, 0.03))
    assert difference_stderr(Estimate(0.1, 0.03), Estimate(0.2, 0.04)) == pytest.approx(0.05)
    assert not is_ahead(Estimate(0.9, None), Estimate(0.1, 0.01))  # no stderr: never ahead
    assert is_ahead(Estimate(2.0, 0.1), Estimate(3.0, 0.1), higher_is_better=False)  # e.g. perplexity
    assert "1.96" in RULE and "√(se₁² + se₂²)" in RULE and "√(Σ se²) / 6" in RULE


def test_best_must_beat_every_row_not_only_the_runner_up() -> None:
    # m0 beats the runner-up m1 clearly, but m2's wide interval reaches it: the top is within noise of m2
    verdict = leader([Estimate(0.60, 0.01), Estimate(0.50, 0.01), Estimate(0.45, 0.20)])
    assert verdict.best is None and verdict.tied == [0, 2] and verdict.runner_up == 1
    text = markdown(report(one_column((0.60, 0.01), (0.50, 0.01), (0.45, 0.20))), {})
    assert "**" not in text and "not ranked: H6 (Avg.) (m0, m2)." in text
    assert "change from m0, in points: m1 -10.00 ± 1.41 (beyond noise), m2 -15.00 ± 20.02 (within noise)." in text


def test_scores_without_stderr_are_never_bold_and_say_why() -> None:
    t = one_column((0.9, None), (0.1, None))
    text = markdown(report(t), {})
    assert "| m0 | 90.00 |" in text and "**" not in text
    assert noise_line(t) == "Not ranked, no standard error (fewer than 2 items per score): H6 (Avg.)."
    assert noise_line(one_column((0.5, 0.1), (None, None))) is None  # one scored row: nothing to compare
    assert change_line(one_column((0.5, 0.1), (None, None))) is None
    assert "H6 (Avg.) change from m0, in points: m1 -80.00 (no stderr)." in text
    assert RULE in text


def six_tasks(n: int, arc_n: int | None = None) -> Table:
    """Two rows scored on every H6 column, n items per task (ARC arc_n in the second row when given)."""
    tasks = list(H6_TASKS)
    rows = []
    for i, arc in enumerate((n, n if arc_n is None else arc_n)):
        ns = {task: n for task in tasks} | {"arc_challenge": arc, "h6": 6 * n}
        rows.append(ScoreRow(f"m{i}", f"m{i}", None, "-", "Base", dict.fromkeys(ns, 0.5), dict.fromkeys(ns, 0.1), ns))
    return Table("h6", "caption", rows)


def test_the_resolution_line_says_what_the_item_counts_can_resolve() -> None:
    # two scores near 50% (item sd 0.5): se of one = 0.5 / sqrt(n - 1); of H6 = sqrt(6 x 0.25 / (n - 1)) / 6
    task_4, h6_4 = 1.96 * math.sqrt(2) * 0.5 / math.sqrt(3), 1.96 * math.sqrt(2) * math.sqrt(6 * 0.25 / 3) / 6
    assert resolvable_gap([4]) == pytest.approx(task_4) and resolvable_gap([4] * 6) == pytest.approx(h6_4)
    assert resolvable_gap([100]) == pytest.approx(0.1393, abs=1e-4)  # the tiny subset: ~14 points per task
    assert resolvable_gap([100] * 6) == pytest.approx(0.0569, abs=1e-4)  # and ~6 points of H6
    assert resolvable_gap([1]) is None and resolvable_gap([]) is None
    line = resolution_line(six_tasks(4))
    assert line is not None and line.startswith("What these items can resolve: ")
    assert f"{100 * h6_4:.2f} on H6 (Avg.); {100 * task_4:.2f} on ARC, HellaSwag, MMLU, TruthfulQA" in line
    assert line in markdown(report(six_tasks(4)), {}) and line in html(report(six_tasks(4)), {})
    # more items resolve smaller gaps; the table's smallest n per column counts (ARC 25 in one row here)
    wide = resolution_line(six_tasks(100, arc_n=25))
    h6_mixed = 1.96 * math.sqrt(2) * math.sqrt(5 * 0.25 / 99 + 0.25 / 24) / 6
    assert f"{100 * h6_mixed:.2f} on H6 (Avg.); {100 * resolvable_gap([25]):.2f} on ARC; 13.93 on HellaSwag" in wide
    # a task of one item resolves nothing, and then neither does H6
    assert resolution_line(six_tasks(2, arc_n=1)) is not None
    assert "on H6" not in resolution_line(six_tasks(2, arc_n=1)) and " ARC" not in resolution_line(six_tasks(2, 1))
    assert resolution_line(one_column((0.5, 0.1), (0.4, 0.1))) is None  # H6 alone, its tasks' counts unknown


def test_format_estimate() -> None:
    assert format_estimate(Estimate(0.74203, 0.04381), scale=100) == "74.20 ± 4.38"
    assert format_estimate(Estimate(0.25, None), decimals=4) == "0.2500"
    assert format_estimate(Estimate(None, 0.1)) == "-"


def task_run(name: str, value: float, stderr: float | None) -> TaskRun:
    metric = HEADLINE_METRIC[name]
    return TaskRun(get_task(name), [], {metric: value}, {metric: stderr})


SIX_STDERRS = {"arc_challenge": 0.03, "hellaswag": 0.04, "truthfulqa_mc2": 0.02, "winogrande": 0.01, "gsm8k": 0.06}


def test_h6_stderr_is_the_root_sum_of_squares_over_six() -> None:
    runs = [task_run(name, 0.5, se) for name, se in SIX_STDERRS.items()]
    mmlu = Aggregate("mmlu", "acc", 0.3, 0.05, 100, [])
    h6 = h6_aggregate(runs, mmlu)
    by_hand = math.sqrt(0.03**2 + 0.04**2 + 0.05**2 + 0.02**2 + 0.01**2 + 0.06**2) / 6  # sqrt(0.0091) / 6
    assert h6 is not None and h6.stderr == pytest.approx(by_hand) and h6.stderr == pytest.approx(0.0158989, rel=1e-5)
    assert h6.value == pytest.approx((5 * 0.5 + 0.3) / 6)
    runs[0] = task_run("arc_challenge", 0.5, None)  # one task of 1 item has no stderr: neither has H6
    assert h6_aggregate(runs, mmlu).stderr is None


def test_mmlu_of_one_item_per_subject_has_the_stderr_of_its_items() -> None:
    # a limit spread over subjects (one item each): lm-eval's pooled stderr is undefined, the items are one sample
    subjects = ["mmlu_anatomy", "mmlu_virology", "mmlu_astronomy", "mmlu_marketing"]
    runs = [TaskRun(get_task(name), [EvalItem(0, {}, [], scores={"acc": acc})], {"acc": acc}, {"acc": None})
            for name, acc in zip(subjects, [1.0, 0.0, 0.0, 1.0], strict=True)]  # fmt: skip
    mmlu = mmlu_aggregate(runs, "harness")
    assert mmlu.value == 0.5 and mmlu.stderr == pytest.approx(math.sqrt(1 / 3) / 2)  # sample sd / sqrt(4)
    runs = [task_run(name, 0.5, se) for name, se in SIX_STDERRS.items()]
    assert h6_aggregate(runs, mmlu).stderr is not None


def test_the_report_fills_h6_stderr_from_its_parts_when_the_store_has_none(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    run_id = store.start_run("r", "r.yaml", "0" * 64, "", [], {}, str(tmp_path), "0.1.0")
    store.stage_started(run_id, "evals/base", 0, "eval", "k1", "ran", {"model": "base"}, {})
    parts = [Score(task, HEADLINE_METRIC[task], 0.5, 0.03, 100, "", True) for task in H6_TASKS]
    h6 = Score("h6", "mean", 0.5, None, 600, "", True)  # written before dusk computed H6's stderr
    artifact = Artifact("k1", "evals/base", "eval", str(tmp_path), "0" * 64, None)
    store.stage_completed(run_id, "evals/base", "ran", 1.0, artifact, StageResult(scores=[*parts, h6]))
    row = build_report(store, run_id).tables[0].rows[0]
    assert row.stderrs["h6"] == pytest.approx(math.sqrt(6 * 0.03**2) / 6) and row.ns["h6"] == 600
    assert row.stderrs["arc_challenge"] == 0.03 and row.ns["arc_challenge"] == 100
    store.close()


def test_the_task_bars_carry_error_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    t = one_column((0.40, 0.03), (0.80, None))
    t.main = True
    series = bar_series(report(t))
    assert [s.label for s in series] == ["m0", "m1"]
    assert series[0].scores[0] == pytest.approx(40.0) and series[0].errors[0] == pytest.approx(3.0)
    assert math.isnan(series[1].errors[0]) and math.isnan(series[0].errors[1])  # no stderr / no score: no bar
    figures = []
    monkeypatch.setattr(plots_module, "_png", lambda figure: figures.append(figure) or b"png")
    assert task_bars(report(t)) == b"png"
    containers = [c for c in figures[0].axes[0].containers if hasattr(c, "errorbar")]
    assert len(containers) == 2 and all(c.errorbar is not None for c in containers)
    _line, _caps, (bars,) = containers[0].errorbar.lines
    (low, high) = bars.get_segments()[0][:, 1]
    assert (low, high) == (pytest.approx(37.0), pytest.approx(43.0))  # the H6 bar of m0: 40 ± 3
    plots_module._pyplot().close(figures[0])


def test_the_console_tables_print_plus_minus() -> None:
    results = {
        "tasks": {"arc_challenge": {"n": 100, "metrics": {"acc": {"value": 0.25, "stderr": 0.0433}}}},
        "groups": {"h6": {"metric": "mean", "value": 0.3, "stderr": None, "n": 600}},
        "settings": {"mode": "harness", "subset": "tiny", "limit": None, "dtype": "float32", "wall_seconds": 1.0},
    }
    table = format_table(results)
    assert "value ± stderr" in table.splitlines()[0]
    assert "0.2500 ± 0.0433  100" in table and "0.3000" in table and "0.3000 ±" not in table
    score = vars(Score("arc_challenge", "acc_norm", 0.25, 0.0433, 100, "", True))
    stage = {"name": "evals/base", "kind": "eval", "state": "ran", "seconds": 1.0, "cache_key": "k", "training": None,
             "error": None, "scores": [score]}  # fmt: skip
    text = format_run({"run": 1, "recipe": "r", "status": "done", "stages": [stage]})
    assert "arc_challenge    acc_norm         0.2500 ± 0.0433  (n=100)" in text
