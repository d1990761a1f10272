"""CLI for evaluation: `dusk eval MODEL --tasks h6 [--mode harness|leaderboard] [--limit N | --subset tiny]
[--apply-chat-template [--no-fewshot-as-multiturn] [--system-instruction TEXT]] ...`.

DUSK_DATA_DIR=../shared/data dusk eval smollm2-135m --tasks h6 --subset tiny
"""

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    from dusk.config_flags import RequiredUsageFormatter, add_config_flags
    from dusk.eval.run import EvalConfig

    parser = subparsers.add_parser(
        "eval",
        help="score a model on the H6 benchmarks (ARC, HellaSwag, MMLU, ...)",
        formatter_class=RequiredUsageFormatter,
    )
    add_config_flags(parser, EvalConfig, positional=("model",))  # flags, defaults and help from the one config
    parser.set_defaults(handler=_eval)


def _eval(args: argparse.Namespace) -> int:
    from dusk.config_flags import config_from_args
    from dusk.eval.parallel import launched
    from dusk.eval.run import EvalConfig, run

    path = run(config_from_args(EvalConfig, args))
    if not launched().main:
        return 0  # the main process prints the table and writes the files
    print(format_table(json.loads(path.read_text())))
    print(f"wrote {path}")
    return 0


def format_table(results: dict) -> str:
    """task / metric / value ± stderr / n, then the MMLU and H6 rows."""
    from dusk.report.significance import Estimate, format_estimate

    def cell(score: dict) -> str:
        return format_estimate(Estimate(score["value"], score.get("stderr")), decimals=4)

    rows = [("task", "metric", "value ± stderr", "n")]
    for name, task in results["tasks"].items():
        for metric, score in task["metrics"].items():
            rows.append((name, metric, cell(score), str(task["n"])))
    for name, group in results["groups"].items():
        rows.append((name, group["metric"], cell(group), str(group["n"])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)) for row in rows]
    settings = results["settings"]
    selection = f"subset {settings['subset']}" if settings["subset"] else f"limit {settings['limit'] or 'none'}"
    where = f"{settings['dtype']} on {settings.get('device', 'cpu')}"
    mode = settings["mode"] + prompt_format(settings)
    lines.append(f"mode {mode}, {selection}, {where}, {settings['wall_seconds']} s")
    return "\n".join(lines)


def prompt_format(settings: dict) -> str:
    """How the prompts were rendered, for the settings line: empty for plain prompts (and results written before
    chat templates were recorded)."""
    parts = []
    if settings.get("apply_chat_template"):
        parts.append("chat template, shots " + ("as turns" if settings.get("fewshot_as_multiturn") else "in one turn"))
    if settings.get("system_instruction") is not None:
        parts.append(f"system instruction {settings['system_instruction']!r}")
    return "".join(f", {part}" for part in parts)
