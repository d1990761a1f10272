"""The `dusk` command: parse arguments, build a typed config, call the stage. Nothing else lives here.

Each area registers its own subcommands (`register(subparsers)` in `dusk/<area>/commands.py`).

    dusk --help
"""

import argparse
import importlib
import logging
import sys

from dusk import __version__
from dusk.errors import DuskError

COMMAND_MODULES = (
    "dusk.models.commands",
    "dusk.data.commands",
    "dusk.train.commands",
    "dusk.merge.commands",
    "dusk.eval.commands",
    "dusk.eval.contamination_commands",
    "dusk.recipe_commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dusk",
        description="dusk, the Depth Up-Scaling Kit: the SOLAR recipe "
        "(DUS, pretraining, SFT, DPO/sDPO, merging, H6 evaluation) from one recipe file.",
    )
    parser.add_argument("--version", action="version", version=f"dusk {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. Exit codes: 0 done, 2 bad input (one line on stderr), 1 the system failed us (a full disk, a
    file that vanished: one line), 130 Ctrl-C, 141 a closed output pipe (`dusk results | head`)."""
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
        code = args.handler(args) or 0
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below, not at interpreter exit
        return code
    except DuskError as exc:
        print(f"dusk: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ndusk: interrupted", file=sys.stderr)  # on a line of its own, after any progress bar
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 141
    except OSError as exc:
        logging.getLogger(__name__).debug("system error", exc_info=True)
        where = f": {exc.filename}" if exc.filename else ""
        print(f"dusk: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1


def _silence_stdout() -> None:
    """After the reader of stdout went away, point stdout at /dev/null so the interpreter's final flush is quiet."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    raise SystemExit(main())
