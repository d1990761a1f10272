"""Command-line flags generated from a pydantic config: one flag per field (its description is the help, its default
stays in the config), `--config FILE.yaml` for all of them, and validation errors that name the flag.

    python -c "import argparse; from dusk.config_flags import add_config_flags; from dusk.train.config import \
SFTConfig; p = argparse.ArgumentParser(); add_config_flags(p, SFTConfig); p.print_help()"
"""

import argparse
import copy
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from dusk.errors import DuskError
from dusk.yaml_file import read_yaml

C = TypeVar("C", bound=BaseModel)


def flag_help(field: Any) -> str:
    """A field's help text as a person should read it: its description and default (or that it is required)."""
    if field.is_required():
        return f"{field.description} (required: this flag or the key in --config)"
    if field.default_factory is not None:  # e.g. an empty list: nothing worth printing
        value = field.default_factory()
        return f"{field.description} (default: {value})" if value else field.description
    if field.default is None:
        return field.description
    shown = ",".join(map(str, field.default)) if isinstance(field.default, tuple | list) else field.default
    return f"{field.description} (default: {shown})"


def _flag_kwargs(name: str, field: Any) -> dict[str, Any]:
    """argparse keyword arguments for one pydantic field (defaults come from the config, not argparse)."""
    annotation = field.annotation
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in args if a is not type(None))
        args = typing.get_args(annotation)
    # argparse formats help with %: a bare % in a description ("~30% slower") would garble it
    kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": flag_help(field).replace("%", "%%")}
    origin = typing.get_origin(annotation)
    if annotation is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif origin is Literal:
        kwargs["choices"] = list(args)
    elif origin is list:
        kwargs["nargs"] = "+"
    elif origin is tuple and args[-1] is Ellipsis:
        kwargs.update(nargs="+", type=args[0])
    elif origin is tuple:
        kwargs.update(nargs=len(args), type=args[0])
    elif annotation is Path:
        kwargs["type"] = _path_arg
    else:
        kwargs["type"] = annotation
    if name == "resume":
        kwargs.update(nargs="?", const="latest", metavar="CHECKPOINT")
    return kwargs


def comma_separated(value: object) -> object:
    """A list field's value given as `a,b` (a flag or a recipe string), or as a list of such strings, as a tuple of
    names; anything else is left to the field's own validation (a pydantic before-validator)."""
    parts = [value] if isinstance(value, str) else value
    if isinstance(parts, list | tuple):
        return tuple(name.strip() for part in parts for name in str(part).split(",") if name.strip())
    return value


def _path_arg(text: str) -> Path:
    """argparse type of a path flag: an empty one would silently mean the current directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty one")
    return Path(text)


class RequiredUsageFormatter(argparse.HelpFormatter):
    """Usage lines that show the config's required flags without brackets (`--model MODEL`, not `[--model MODEL]`).

    argparse cannot mark them `required=True`: a `--config` file may give them instead. They are refused when
    missing from both by `config_from_args`.
    """

    def _format_usage(self, usage, actions, groups, prefix):  # noqa: ANN001, ANN202 (argparse's signature)
        shown = [_shown_required(action) if getattr(action, "config_required", False) else action for action in actions]
        return super()._format_usage(usage, shown, groups, prefix)


def _shown_required(action: argparse.Action) -> argparse.Action:
    shown = copy.copy(action)
    shown.required = True
    return shown


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def add_config_flags(
    parser: argparse.ArgumentParser, config_cls: type[BaseModel], positional: tuple[str, ...] = ()
) -> None:
    """One flag per config field (`--max-steps` for `max_steps`; the `positional` fields as arguments), plus
    `--config FILE.yaml`. Defaults stay in the config: a flag not given is not passed on."""
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE.yaml",
        help="YAML file whose keys are these flags' names (with underscores); flags on the command line win",
    )
    for name in positional:
        field = config_cls.model_fields[name]
        parser.add_argument(name, help=field.description.replace("%", "%%"))
    for name, field in config_cls.model_fields.items():
        if name in positional:
            continue
        action = parser.add_argument(flag_name(name), dest=name, **_flag_kwargs(name, field))
        action.config_required = field.is_required()  # shown as required by RequiredUsageFormatter


def read_yaml_config(path: Path) -> dict[str, Any]:
    """The mapping in a `--config` YAML file."""
    try:
        data = read_yaml(path, "--config file") or {}
    except DuskError as exc:
        raise DuskError(f"--config {exc}") from exc
    if not isinstance(data, dict):
        raise DuskError(f"--config {path}: expected a mapping of field: value, got a {type(data).__name__}")
    return data


def build_config(config_cls: type[C], values: dict[str, Any], source: str = "arguments", keys: bool = False) -> C:
    """Validate `values` into a config, with an error naming the field (as a flag; with `keys`, also as the YAML
    key) and what was expected."""
    unknown = sorted(set(values) - set(config_cls.model_fields))
    if unknown:
        known = ", ".join(config_cls.model_fields)
        raise DuskError(f"{source}: unknown field(s) {', '.join(unknown)}; known fields: {known}")
    try:
        return config_cls(**values)
    except ValidationError as exc:
        problems = "; ".join(_problem(error, keys) for error in exc.errors())
        raise DuskError(f"{source}: {problems}") from exc


def _problem(error: dict[str, Any], keys: bool) -> str:
    """One validation error as `--max-steps 0: Input should be greater than or equal to 1` (with `keys`:
    `max_steps (--max-steps) 0: ...`)."""
    loc = [str(part) for part in error["loc"]]
    if not loc:  # a model-level rule (several fields together)
        return str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    shown = "" if isinstance(value, dict) else f" {value!r}" if isinstance(value, str) else f" {value}"
    name = f"{loc[0]} ({flag_name(loc[0])})" if keys else flag_name(loc[0])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{name}{'.' + '.'.join(loc[1:]) if loc[1:] else ''}{shown}: {message}"


def config_from_args(config_cls: type[C], args: argparse.Namespace, defaults: dict[str, Any] | None = None) -> C:
    """Merge `defaults`, then `--config` YAML (if any), then the flags given on the command line (flags win)."""
    values: dict[str, Any] = dict(defaults or {})
    source = "command line"
    if getattr(args, "config", None) is not None:
        values.update(read_yaml_config(args.config))
        source = f"{args.config} + command line"
    values.update({name: getattr(args, name) for name in config_cls.model_fields if hasattr(args, name)})
    _require(config_cls, values, getattr(args, "config", None))
    return build_config(config_cls, values, source, keys=getattr(args, "config", None) is not None)


def _require(config_cls: type[BaseModel], values: dict[str, Any], config_file: Path | None) -> None:
    """Refuse, naming them, required fields given neither as flags nor in the --config file."""
    missing = [name for name, field in config_cls.model_fields.items() if field.is_required() and name not in values]
    if missing:
        flags = ", ".join(flag_name(name) for name in missing)
        where = f"it is not in {config_file} either" if config_file is not None else "nor in a --config YAML file"
        raise DuskError(f"missing required {flags}: not given on the command line, {where}")
