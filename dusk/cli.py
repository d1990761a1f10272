"""The `dusk` command: parse arguments, build a typed config, call the stage. Nothing else lives here.

Each area registers its own subcommands (`register(subparsers)` in `dusk/<area>/commands.py`).

    dusk --help
"""

import argparse
import logging
import sys

from dusk import __version__
from dusk.errors import DuskError


def _register_commands(subparsers: argparse._SubParsersAction) -> None:
    """Every area's subcommands, in the order `dusk --help` lists them (each module imports no torch at load)."""
    from dusk import recipe_commands
    from dusk.cards import commands as card_commands
    from dusk.contamination import commands as contamination_commands
    from dusk.data import commands as data_commands
    from dusk.eval import commands as eval_commands
    from dusk.measures import commands as measure_commands
    from dusk.merge import commands as merge_commands
    from dusk.models import commands as model_commands
    from dusk.train import commands as train_commands

    for module in (model_commands, data_commands, train_commands, merge_commands, eval_commands,
                   measure_commands, contamination_commands, card_commands, recipe_commands):  # fmt: skip
        module.register(subparsers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dusk",
        description="dusk, the Depth Up-Scaling Kit: the SOLAR recipe "
        "(DUS, pretraining, SFT, DPO/sDPO, merging, H6 evaluation) from one recipe file.",
    )
    parser.add_argument("--version", action="version", version=f"dusk {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _register_commands(subparsers)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse as argparse does, except that `dusk run`'s STAGE.FIELD=VALUE overrides may also follow its options
    (`dusk run R --dry-run a.b=1`): argparse stops filling a positional list once an option has come between."""
    args, extra = parser.parse_known_args(argv)
    if hasattr(args, "overrides"):
        args.overrides = [*args.overrides, *(word for word in extra if not word.startswith("-"))]
        extra = [word for word in extra if word.startswith("-")]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run one command. Exit codes: 0 done, 2 bad input (one line on stderr), 1 the system failed us (a full disk, a
    file that vanished: one line), 130 Ctrl-C, 141 a closed output pipe (`dusk results | head`)."""
    try:
        args = parse_args(build_parser(), argv)
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
        code = args.handler(args) or 0
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below, not at interpreter exit
        return code
    except DuskError as exc:
        print(f"dusk: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _close_progress_bars()
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


def _close_progress_bars() -> None:
    """Close the open progress bars, so none redraws itself after the last line dusk prints."""
    tqdm = sys.modules.get("tqdm.std")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", [])):
        bar.close()


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
