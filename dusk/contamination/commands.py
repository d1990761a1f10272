"""CLI for the contamination test: `dusk contamination MODEL --reference REF [--tasks h6] [--n 100] ...`.

DUSK_DATA_DIR=../shared/data dusk contamination runs/my-finetune --reference smollm2-135m --tasks h6 --n 20
"""

import argparse

from dusk.config_flags import RequiredUsageFormatter, add_config_flags, config_from_args
from dusk.contamination.config import ContaminationConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "contamination",
        help="has MODEL trained on the benchmarks? SOLAR's Appendix C test (after Shi et al. 2023) and Min-K%% Prob",
        description="Per item, REF samples continuations of the first 40% of the words; the item's score is the "
        "share of samples MODEL finds easier than the real text (near 0 = suspicious). Per task: the share of "
        "items scoring below 0.1 (near 1 = MODEL very likely trained on the task) and Min-K% Prob.",
        formatter_class=RequiredUsageFormatter,
    )
    add_config_flags(parser, ContaminationConfig, positional=("model",))  # flags and defaults from the one config
    parser.set_defaults(handler=_contamination)


def _contamination(args: argparse.Namespace) -> int:
    from dusk.contamination.run import run  # torch: imported only when the test runs
    from dusk.eval.parallel import launched

    results = run(config_from_args(ContaminationConfig, args))
    if not launched().main:
        return 0  # the main process prints the table and writes the files
    print((results.parent / "table.md").read_text(encoding="utf-8"))
    print(f"wrote {results.parent} (results.json, table.md, samples_<task>.jsonl)")
    return 0
