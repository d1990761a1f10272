"""CLI for recipes: `dusk run RECIPE.yaml [STAGE.FIELD=VALUE ...] [--dry-run] [--run-dir DIR] [--processes N]`,
`dusk results`, `dusk report --out DIR`.

    dusk run recipes/tiny.yaml --dry-run
    dusk run recipes/tiny.yaml --processes 2            # each training stage in 2 processes (torchrun)
    dusk run recipes/tiny.yaml evals.limit=5 && dusk report --out runs/tiny/report
"""

import argparse
import json
import typing
from pathlib import Path

from dusk.errors import DuskError


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("run", help="run a recipe: every stage in order, skipping what is already cached")
    run.add_argument("recipe", type=Path, help="recipe YAML (e.g. recipes/solar-mini.yaml)")
    run.add_argument("overrides", nargs="*", help="STAGE.FIELD=VALUE overrides (e.g. sft_v1.lr=1e-5), budget=NAME")
    run.add_argument("--dry-run", action="store_true", help="print the plan (cached / resumable / to run) and stop")
    run.add_argument("--run-dir", type=Path, help="run directory (default runs/<recipe name>)")
    run.add_argument("--no-report", action="store_true", help="do not write RUN_DIR/report at the end")
    run.add_argument(
        "--keep-checkpoints", action="store_true", help="keep finished stages' checkpoints (deleted by default)"
    )
    _add_launch_flags(run)
    run.add_argument(
        "--device-memory",
        metavar="SIZE",
        help="with --dry-run: a device's memory (e.g. 80GiB); the memory plan marks the training stages that do not "
        "fit and what would make them fit",
    )
    run.set_defaults(handler=_run)

    results = subparsers.add_parser("results", help="list the results store's runs, or one run's stages and scores")
    results.add_argument("--run", type=int, help="a run id (default: list every run)")
    results.add_argument("--run-dir", type=Path, help="run directory (default: the most recent under runs/)")
    results.add_argument("--json", action="store_true", help="print the run's stages and scores as JSON")
    results.set_defaults(handler=_results)

    report = subparsers.add_parser("report", help="write a run's tables and plots (Markdown and HTML)")
    report.add_argument("--run", type=int, help="a run id (default: the latest)")
    report.add_argument("--run-dir", type=Path, help="run directory (default: the most recent under runs/)")
    report.add_argument("--out", type=Path, required=True, help="output directory for report.md and report.html")
    report.set_defaults(handler=_report)


def _add_launch_flags(parser: argparse.ArgumentParser) -> None:
    """--processes, --shard, --device from the Launch config's fields: the recipe-wide `launch:` values, which a
    stage's own `launch:` still overrides."""
    from dusk.config_flags import flag_help, flag_name
    from dusk.launch import Launch

    for name, field in Launch.model_fields.items():
        choices = typing.get_args(field.annotation) or None
        kind = None if choices else field.annotation
        text = f"recipe-wide launch {name}: {flag_help(field)}"
        metavar = "N" if kind is int else None
        parser.add_argument(flag_name(name), dest=f"launch_{name}", type=kind, choices=choices, metavar=metavar,
                            help=text)  # fmt: skip


def _launch_args(args: argparse.Namespace) -> dict:
    from dusk.launch import Launch

    return {name: getattr(args, f"launch_{name}") for name in Launch.model_fields}


def _run(args: argparse.Namespace) -> int:
    from dusk.recipe import load_recipe
    from dusk.runner import run_recipe
    from dusk.store import open_store

    if args.device_memory is not None and not args.dry_run:
        raise DuskError(f"--device-memory {args.device_memory}: only used with --dry-run (the memory plan)")
    recipe = load_recipe(args.recipe, args.overrides, _launch_args(args))
    run_dir = args.run_dir or Path("runs") / recipe.name
    if args.dry_run:
        _dry_run(recipe, run_dir, args.device_memory)
        return 0
    outcome = run_recipe(recipe, run_dir, keep_checkpoints=args.keep_checkpoints)
    counts = {state: list(outcome.states.values()).count(state) for state in ("ran", "resumed", "cached")}
    print(f"run {outcome.run_id} of {recipe.name} finished in {outcome.seconds:.1f} s: "
          + ", ".join(f"{n} {state}" for state, n in counts.items()))  # fmt: skip
    if not args.no_report:
        from dusk.report import write_report

        store = open_store(run_dir, must_exist=True)
        try:
            markdown, html = write_report(store, run_dir / "report", outcome.run_id)
        finally:
            store.close()
        print(markdown.read_text())
        print(f"report: {markdown} and {html}")
    return 0


def _dry_run(recipe, run_dir: Path, device_memory: str | None) -> None:
    """The plan (each stage cached, resumable or to run), then the training stages' memory plan."""
    from dusk.run_memory import memory_plan_text, parse_device_memory
    from dusk.runner import dry_plan, format_plan

    size = parse_device_memory(device_memory) if device_memory is not None else None
    items = dry_plan(recipe, run_dir)
    print(format_plan(recipe, run_dir, items))
    memory = memory_plan_text(items, size)
    if memory:
        print(f"\n{memory}")


def _store_for(run_dir: Path | None):
    from dusk.store import find_run_dir, open_store

    return open_store(run_dir or find_run_dir(), must_exist=True)


def _results(args: argparse.Namespace) -> int:
    store = _store_for(args.run_dir)
    try:
        if args.run is None and not args.json:
            print(format_runs(store))
        else:
            data = run_results(store, args.run)
            print(json.dumps(data, indent=2) if args.json else format_run(data))
    finally:
        store.close()
    return 0


def format_runs(store) -> str:
    rows = store.runs()
    if not rows:
        raise DuskError(f"{store.path}: no runs recorded yet")
    lines = [f"{'id':>3}  {'recipe':<16} {'status':<11} {'started':<25} stages"]
    for row in rows:
        stages = store.stages(row["id"])
        ran = sum(s["state"] in ("ran", "resumed") for s in stages)
        cached = sum(s["state"] == "cached" for s in stages)
        lines.append(f"{row['id']:>3}  {row['recipe']:<16} {run_status(store, row):<11} {row['started']:<25} "
                     f"{len(stages)} ({ran} ran, {cached} cached)")  # fmt: skip
    return "\n".join(lines)


def run_results(store, run_id: int | None) -> dict:
    """A run's stages with their cache keys, artifacts, training summaries and scores, as plain data."""
    run = store.run(run_id)
    stages = []
    for row in store.stages(run["id"]):
        key = row["cache_key"]
        artifact = store.artifact(key) if key else None
        training = store.training(key) if key else None
        stages.append({
            "name": row["name"], "kind": row["kind"], "state": row["state"], "seconds": row["seconds"],
            "cache_key": key, "artifact": artifact.path if artifact else None,
            "parameters": artifact.parameters if artifact else None,
            "training": None if training is None else {"steps": training.steps, "final_loss": training.final_loss},
            "settings": store.settings(key) if key else None,
            "scores": [vars(score) for score in store.scores(key)] if key else [],
            "error": row["error"],
        })  # fmt: skip
    return {"run": run["id"], "recipe": run["recipe"], "status": run_status(store, run), "stages": stages}


def run_status(store, run) -> str:
    """A run's recorded status, except that a `running` run whose run directory nobody holds was killed."""
    from dusk.run_lock import run_dir_in_use

    if run["status"] == "running" and not run_dir_in_use(store.path.parent):
        return "killed"
    return run["status"]


def format_run(data: dict) -> str:
    """A run's stages, training summaries and headline scores (`value ± stderr (n=...)`)."""
    from dusk.report.significance import Estimate, format_estimate

    lines = [f"run {data['run']} of {data['recipe']} ({data['status']})"]
    for stage in data["stages"]:
        seconds = f"{stage['seconds']:.1f} s" if stage["seconds"] is not None else "-"
        lines.append(f"  {stage['name']:<24} {stage['kind']:<13} {stage['state']:<8} {seconds:>9}  "
                     f"{(stage['cache_key'] or '')[:12]}")  # fmt: skip
        if stage["training"]:
            loss = stage["training"]["final_loss"]
            lines.append(f"      training: {stage['training']['steps']} steps, final loss "
                         f"{'-' if loss is None else f'{loss:.4f}'}")  # fmt: skip
        measure = bool((stage.get("settings") or {}).get("columns"))  # a perplexity/heldout table: every cell counts
        width = max((len(score["task"]) for score in stage["scores"]), default=0) if measure else 16
        metric_width = max((len(score["metric"]) for score in stage["scores"]), default=0) if measure else 16
        for score in stage["scores"]:
            if measure or (score["headline"] and not score["subject"]):
                value = format_estimate(Estimate(score["value"], score["stderr"]), decimals=4)
                label = f"{score['task']:<{width}} {score['metric']:<{metric_width}}"
                lines.append(f"      {label} {value}  (n={score['n']})")
        if stage["error"]:
            lines.append(f"      error: {stage['error'].strip().splitlines()[-1]}")
    return "\n".join(lines)


def _report(args: argparse.Namespace) -> int:
    from dusk.report import write_report

    store = _store_for(args.run_dir)
    try:
        markdown, html = write_report(store, args.out, args.run)
    finally:
        store.close()
    print(f"wrote {markdown} and {html}")
    return 0
