"""recipes/tiny.yaml end to end: every stage kind but the measures runs, a second run does no work, the report has
every table."""

import re
import time

from recipe_fixtures import TinyRun, tiny_run  # noqa: F401

from dusk.cli import main
from dusk.recipe import load_recipe
from dusk.runner import plan_text, run_recipe
from dusk.store import open_store


def test_every_stage_runs(tiny_run: TinyRun) -> None:  # noqa: F811
    recipe = load_recipe(tiny_run.recipe)
    assert tiny_run.summary.states == dict.fromkeys(recipe.stages, "ran")
    print(f"tiny.yaml: {len(recipe.stages)} stages in {tiny_run.seconds:.1f} s")
    store = open_store(tiny_run.run_dir)
    rows = {row["name"]: row for row in store.stages(tiny_run.summary.run_id)}
    for name, stage in recipe.stages.items():
        artifact = store.artifact(rows[name]["cache_key"])
        assert artifact is not None and (tiny_run.run_dir / "artifacts" / name).exists(), name
        assert (tiny_run.run_dir / "logs" / f"{name}.log").is_file(), name
        if stage.kind in ("pretrain", "sft", "dpo", "sdpo"):
            training = store.training(rows[name]["cache_key"])
            assert training is not None and training.curve and training.steps > 0, name
    sdpo = store.training(rows["sdpo"]["cache_key"])
    assert [step for step, _loss in sdpo.curve] == [1, 2, 3, 4]  # two sDPO steps of 2, one curve


def test_second_run_does_no_work(tiny_run: TinyRun) -> None:  # noqa: F811
    plan = plan_text(load_recipe(tiny_run.recipe), tiny_run.run_dir)
    assert plan.splitlines()[-1] == f"{len(load_recipe(tiny_run.recipe).stages)} cached, 0 resumable, 0 to run"
    started = time.perf_counter()
    again = run_recipe(load_recipe(tiny_run.recipe), tiny_run.run_dir, show_progress=False)
    assert set(again.states.values()) == {"cached"}
    assert time.perf_counter() - started < 15


def test_changing_sft_v1_reruns_its_descendants_only(tiny_run: TinyRun, tmp_path) -> None:  # noqa: F811
    """An override of one field: sft_v1 and everything downstream of it re-run; nothing else does."""
    plan = plan_text(load_recipe(tiny_run.recipe, ["sft_v1.lr=5e-4"]), tiny_run.run_dir)
    to_run = {line.split()[1] for line in plan.splitlines()[1:-1] if "to run" in line and "after inputs" not in line}
    descendants = {"sft_v1", "evals/sft_v1", "sft_v1_v2", "evals/sft_v1_v2", "dpo", "sdpo", "final", "evals/dpo",
                   "evals/sdpo", "evals/final", "contamination"}  # fmt: skip
    assert {line.split()[1] for line in plan.splitlines()[1:-1] if "cached" not in line} == descendants
    assert to_run == {"sft_v1"}  # the others wait for their inputs


def test_report_has_every_table_and_plot(tiny_run: TinyRun, tmp_path, capsys) -> None:  # noqa: F811
    out = tmp_path / "report"
    assert main(["report", "--run-dir", str(tiny_run.run_dir), "--out", str(out), "--run", "1"]) == 0
    markdown = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    recipe = load_recipe(tiny_run.recipe)
    for table in [*(t.name for t in recipe.tables), "main", "Contamination test"]:
        assert f"### {table}" in markdown and table in html, table
    for row in ["SFT v1 (Alpaca-GPT4)", "sDPO (2 steps)", "| sft_v2 | 0.", "Alignment-tuned", "| final |"]:
        assert row in markdown, row
    assert (out / "loss_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert html.count("data:image/png;base64,") == 2
    # links to model directories and cards are navigation; nothing may be loaded from outside (images, styles, scripts)
    assert not re.search(r"""src=["'](?!data:)|<link[^>]*href=""", html), "the HTML must not load anything from outside"
    assert "limit 1" in markdown and "mode harness" in markdown and "not with the Open LLM Leaderboard" in markdown
    assert main(["results", "--run-dir", str(tiny_run.run_dir)]) == 0
    assert "tiny" in capsys.readouterr().out
