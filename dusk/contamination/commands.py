"""CLI for the contamination test: `dusk contamination MODEL --reference REF [--tasks h6] [--n 100] ...`.

DUSK_DATA_DIR=../shared/data dusk contamination runs/my-finetune --reference smollm2-135m --tasks h6 --n 20
"""

import argparse
import os
from pathlib import Path

from pydantic import ValidationError

from dusk.contamination.config import DEFAULT_SAMPLES, ContaminationConfig
from dusk.errors import DuskError
from dusk.run_output import out_dir_arg


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "contamination",
        help="has MODEL trained on the benchmarks? SOLAR's Appendix C test (after Shi et al. 2023) and Min-K%% Prob",
        description="Per item, REF samples continuations of the first 40% of the words; the item's score is the "
        "share of samples MODEL finds easier than the real text (near 0 = suspicious). Per task: the share of "
        "items scoring below 0.1 (near 1 = MODEL very likely trained on the task) and Min-K% Prob.",
    )
    parser.add_argument("model", help="the model under test: built-in name, model directory or .gguf file")
    parser.add_argument("--reference", required=True, help="model that samples the continuations (e.g. the base)")
    parser.add_argument("--tasks", default="h6", help="comma-separated tasks or h6 (default h6: all six)")
    parser.add_argument("--n", type=int, default=100, help="items per task, seeded draw (default 100)")
    parser.add_argument(
        "--samples", type=int, default=DEFAULT_SAMPLES, help=f"continuations per item (default {DEFAULT_SAMPLES})"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the item draw and the sampling (default 0)")
    parser.add_argument("--out", type=out_dir_arg, help="output directory (default runs/contamination-<model name>)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32", help="model dtype")
    parser.add_argument("--top-k", type=int, default=50, help="sample from the top-k tokens (0 = all)")
    parser.add_argument(
        "--sampler",
        choices=["reference", "model"],
        default="reference",
        help="who samples: the reference (the paper's test, default) or MODEL itself (not fooled by a learned "
        "answer format; see docs/contamination.md)",
    )
    parser.set_defaults(handler=_contamination)


def flag_problems(exc: ValidationError) -> str:
    """The config's validation errors in the flags' terms: `--top-k -1: Input should be greater than or equal to 0`."""
    problems = []
    for error in exc.errors():
        flag = "--" + "-".join(str(part) for part in error["loc"]).replace("_", "-")
        value = error["input"]
        shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
        problems.append(f"{flag} {shown!r}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)


def _contamination(args: argparse.Namespace) -> int:
    from dusk.contamination.run import run  # torch: imported only when the test runs

    out = args.out or Path("runs") / f"contamination-{Path(os.path.abspath(args.model)).name}"
    try:
        cfg = ContaminationConfig(
            model=args.model,
            reference=args.reference,
            tasks=tuple(name.strip() for name in args.tasks.split(",") if name.strip()),
            n=args.n,
            samples=args.samples,
            seed=args.seed,
            out=out,
            dtype=args.dtype,
            top_k=args.top_k,
            sampler=args.sampler,
        )
    except ValidationError as exc:
        raise DuskError(f"contamination: {flag_problems(exc)}") from exc
    results = run(cfg)
    print((results.parent / "table.md").read_text(encoding="utf-8"))
    print(f"wrote {results.parent} (results.json, table.md, samples_<task>.jsonl)")
    return 0
