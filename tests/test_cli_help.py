"""Every command's --help reads as text a person wrote: no pydantic internals leak into a flag's default."""

import argparse

from dusk.cli import build_parser


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _subcommands(sub).items()})
    return found


def test_no_command_help_shows_pydantic_internals() -> None:
    commands = _subcommands(build_parser())
    assert {"heldout", "perplexity", "eval", "sft", "merge"} <= set(commands)
    for name, parser in commands.items():
        text = parser.format_help()
        assert "PydanticUndefined" not in text and "default_factory" not in text, name
