"""CLI for evaluation: `dusk eval MODEL --tasks h6 [--mode harness|leaderboard] [--limit N | --subset tiny] ...`.

DUSK_DATA_DIR=../shared/data dusk eval smollm2-135m --tasks h6 --subset tiny
"""

import argparse
import json
import os
from pathlib import Path

from dusk.run_output import out_dir_arg


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="score a model on the H6 benchmarks (ARC, HellaSwag, MMLU, ...)")
    parser.add_argument("model", help="built-in name, Hugging Face model directory or .gguf file")
    parser.add_argument(
        "--tasks", default="h6", help="comma-separated tasks or groups: h6, mmlu, arc_challenge, hellaswag, "
        "truthfulqa_mc2, winogrande, gsm8k, mmlu_<subject> (default h6)",
    )  # fmt: skip
    parser.add_argument(
        "--mode", default="harness", choices=["harness", "leaderboard"],
        help="harness = lm-evaluation-harness 0.4.x; leaderboard = Open LLM Leaderboard v1 (default harness)",
    )  # fmt: skip
    parser.add_argument("--limit", type=int, help="score the first N items of each task (each MMLU subject)")
    parser.add_argument("--subset", help="score a fixed documented subset: tiny = 100 items per task")
    parser.add_argument("--batch-size", type=int, default=8, help="requests per forward batch (default 8)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="model dtype")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="GSM8K generation budget (default 256)")
    parser.add_argument("--out", type=out_dir_arg, help="output directory (default runs/eval/<model name>)")
    parser.set_defaults(handler=_eval)


def _eval(args: argparse.Namespace) -> int:
    from dusk.eval.run import EvalConfig, run

    out = args.out or Path("runs") / "eval" / Path(os.path.abspath(args.model)).name.removesuffix(".gguf")
    cfg = EvalConfig(
        model=args.model,
        tasks=tuple(name.strip() for name in args.tasks.split(",") if name.strip()),
        out=out,
        mode=args.mode,
        limit=args.limit,
        subset=args.subset,
        batch_size=args.batch_size,
        dtype=args.dtype,
        max_new_tokens=args.max_new_tokens,
    )
    path = run(cfg)
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
    lines.append(f"mode {settings['mode']}, {selection}, {settings['dtype']}, {settings['wall_seconds']} s")
    return "\n".join(lines)
