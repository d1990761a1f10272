"""CLI for the measures: `dusk perplexity` and `dusk heldout` (flags, defaults and help from their configs).

DUSK_DATA_DIR=../shared/data dusk perplexity --models smollm2-135m runs/pt --data gutenberg --out runs/ppl
DUSK_DATA_DIR=../shared/data dusk heldout --models runs/sft_a runs/sft_b --data alpaca_gpt4 gsm8k_train --out runs/h
"""

import argparse
from pathlib import Path

COMMANDS = {
    "perplexity": ("held-out perplexity of models on a text, ± stderr over sequences, paired differences",
                   "dusk.measures.perplexity", "PerplexityConfig"),
    "heldout": ("held-out loss (instruction data) or reward accuracy and margin (preference data) of models",
                "dusk.measures.heldout", "HeldoutConfig"),
}  # fmt: skip


def register(subparsers: argparse._SubParsersAction) -> None:
    from dusk.config_flags import RequiredUsageFormatter, add_config_flags
    from dusk.measures import config

    for name, (help_text, module_name, config_name) in COMMANDS.items():
        parser = subparsers.add_parser(name, help=help_text, description=help_text,
                                       formatter_class=RequiredUsageFormatter)  # fmt: skip
        config_cls = getattr(config, config_name)
        add_config_flags(parser, config_cls)
        parser.set_defaults(handler=_handler(module_name, config_cls))


def _handler(module_name: str, config_cls: type):
    def handle(args: argparse.Namespace) -> int:
        import importlib

        from dusk.config_flags import config_from_args

        out = importlib.import_module(module_name).run(config_from_args(config_cls, args))
        print(format_table(Path(out)))
        print(f"wrote {Path(out) / 'results.json'}")
        return 0

    return handle


def format_table(out: Path) -> str:
    """The measure's table as plain text: model, then value ± stderr per column, then its notes."""
    from dusk.measures.results import read_results
    from dusk.report.significance import Estimate, format_estimate

    document = read_results(out)
    columns = document["columns"]
    rows = [["model", *(c["title"] for c in columns)]]
    for row in document["rows"]:
        cells = []
        for column in columns:
            score = row["scores"].get(column["key"])
            estimate = Estimate(score["value"], score.get("stderr")) if score else Estimate(None)
            cells.append(format_estimate(estimate, decimals=column["decimals"]))
        rows.append([row["label"] + (f" ({row['note']})" if row.get("note") else ""), *cells])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)) for row in rows)
