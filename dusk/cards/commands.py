"""CLI for `dusk card MODEL_DIR [--results results.json]`: (re)write a model directory's Hub model card.

dusk card runs/sft --results runs/eval-sft/results.json
"""

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    card = subparsers.add_parser(
        "card",
        help="(re)write a model directory's model card (README.md), e.g. after an evaluation",
        description="Write MODEL_DIR/README.md, a Hugging Face model card, from the directory's own dusk records "
        "(parents with hashes, data, training curve, merge config or DUS slices, the command that rebuilds it). "
        "A README.md dusk did not write is never overwritten.",
    )
    card.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="a model directory dusk wrote")
    card.add_argument(
        "--results", type=Path, help="an evaluation's results.json: its H6 scores go into the card's model-index"
    )
    card.set_defaults(handler=_card)


def _card(args: argparse.Namespace) -> int:
    from dusk.cards.card import CARD, write_card
    from dusk.errors import DuskError

    written = write_card(args.model_dir, args.results)
    if written is None:
        raise DuskError(
            f"{args.model_dir / CARD} is your own (it lacks dusk's marker line): dusk never overwrites it; "
            "move it away to get a dusk card"
        )
    print(f"wrote {written}")
    return 0
