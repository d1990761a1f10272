"""What a stage kind is (`StageKind`: schema, run, prepare, collect, inputs) and how recipe values become its config:
field listing, validation with errors naming the stage and field, command-line override coercion, and dumping.

    python -c "from dusk.stages import field_specs, get_kind; print(list(field_specs(get_kind('merge'))))"
"""

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from dusk.errors import DuskError
from dusk.store import StageResult

# The runner sets these (every path a stage writes lies under the run directory); recipes may not.
RUNNER_FIELDS = frozenset({"out", "force", "resume", "run_dir", "ref_cache"})
PLACEHOLDER_OUT = Path("/dusk-run-dir/placeholder")


@dataclass(frozen=True)
class FieldSpec:
    """One recipe field of a kind: its type, default and one-line description."""

    name: str
    annotation: Any
    required: bool
    default: Any
    description: str


@dataclass(frozen=True)
class StagePaths:
    """Where a stage writes, all inside the run directory."""

    out: Path  # the artifact: a model directory, an eval's output directory or a data file
    work: Path  # checkpoints and step logs of resumable stages
    cache: Path  # caches shared by the run's stages (e.g. DPO reference log-probs)


@dataclass(frozen=True)
class StageKind:
    """How the runner drives one kind of stage."""

    name: str
    summary: str
    schema: Callable[[], type]  # the recipe-facing fields: a pydantic model or a dataclass (imported lazily)
    run: Callable[[Any], Path]  # the stage's own run(cfg) -> Path
    prepare: Callable[[Any, StagePaths, bool], Any]  # (validated fields, paths, resume?) -> the stage's config
    collect: Callable[[Path, Any], StageResult]  # (artifact, config) -> what goes into the results store
    inputs: tuple[str, ...] = ("model",)  # model fields that may name earlier stages; `from:` fills the first one
    data_inputs: tuple[str, ...] = ()  # data fields that may name earlier (data) stages, else a dataset or file
    data_files: Callable[[Any], list[Path]] = lambda cfg: []  # files whose bytes enter the cache key
    has_checkpoint: Callable[[Path], bool] | None = None  # resumable kinds: does this work directory hold one?
    normalize: Callable[[dict], dict] = lambda raw: raw  # recipe shorthands -> schema values (e.g. "h6" -> ["h6"])
    artifact: str = "model"  # what the artifact path holds: model, eval, data
    output: Callable[[Path], Path] = lambda out: out  # what later stages read, given the artifact path
    field_hints: dict[str, str] = dataclasses.field(default_factory=dict)  # unknown field -> where it belongs
    unkeyed: tuple[str, ...] = ()  # fields that do not change the artifact (a progress bar): outside the cache key


def field_specs(kind: StageKind) -> dict[str, FieldSpec]:
    """The fields a recipe may set for this kind (the schema's fields minus the runner-owned ones)."""
    return _field_specs(kind.schema())


@functools.cache
def _field_specs(schema: type) -> dict[str, FieldSpec]:
    specs: dict[str, FieldSpec] = {}
    if issubclass(schema, BaseModel):
        for name, info in schema.model_fields.items():
            default = None if info.is_required() else info.get_default(call_default_factory=True)
            annotation = info.rebuild_annotation()  # with its validators (a recipe override's text goes through them)
            specs[name] = FieldSpec(name, annotation, info.is_required(), default, info.description or "")
    else:
        hints = typing.get_type_hints(schema)
        for item in dataclasses.fields(schema):
            required = item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING
            default = None if required else (item.default if item.default is not dataclasses.MISSING else None)
            specs[item.name] = FieldSpec(item.name, hints[item.name], required, default, _comment(schema, item.name))
    return {name: spec for name, spec in specs.items() if name not in RUNNER_FIELDS}


def _comment(schema: type, name: str) -> str:
    """A dataclass field's trailing `# comment`, used as its description."""
    try:
        source = inspect.getsource(schema)
    except (OSError, TypeError):
        return ""
    for line in source.splitlines():
        if line.strip().startswith(f"{name}:") and "#" in line:
            return line.split("#", 1)[1].strip()
    return ""


def _all_fields(schema: type) -> set[str]:
    if issubclass(schema, BaseModel):
        return set(schema.model_fields)
    return {item.name for item in dataclasses.fields(schema)}


def _shown(value: Any, limit: int = 80) -> str:
    """A value as the error line quotes it: its repr, cut short when long (a whole mapping would flood the line)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_text(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        if not error["loc"]:  # a rule over several fields: its message names them
            parts.append(message)
            continue
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"field {where}: {message} (got {_shown(error.get('input'))})")
    return "; ".join(parts)


def validate(kind: StageKind, raw: dict, where: str) -> Any:
    """Build the kind's schema object from recipe values, with errors naming `where` (the stage) and the field."""
    specs = field_specs(kind)
    unknown = sorted(set(raw) - set(specs))
    if unknown:
        owned = [name for name in unknown if name in RUNNER_FIELDS]
        if owned:
            raise DuskError(f"{where}: field {owned[0]!r} is set by the runner (outputs go under the run directory)")
        hint = kind.field_hints.get(unknown[0])
        if hint:
            raise DuskError(f"{where}: kind {kind.name} has no field {unknown[0]!r}: {hint}")
        raise DuskError(f"{where}: unknown field {unknown[0]!r} for kind {kind.name}; valid fields: {', '.join(specs)}")
    schema = kind.schema()
    values = kind.normalize(dict(raw))
    if "out" in _all_fields(schema):
        values["out"] = PLACEHOLDER_OUT
    try:
        return TypeAdapter(schema).validate_python(values)
    except ValidationError as exc:
        raise DuskError(f"{where}: {_error_text(exc)}") from exc
    except DuskError as exc:
        raise DuskError(f"{where}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise DuskError(f"{where}: {exc}") from exc


def coerce(kind: StageKind, field: str, text: str, where: str) -> Any:
    """A command-line override's text as a value of the field's type (YAML first, then the plain string)."""
    import yaml

    annotation = field_specs(kind)[field].annotation
    adapter = TypeAdapter(annotation)
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        parsed = text
    first_error = None
    for candidate in (parsed, text):
        candidate = kind.normalize({field: candidate})[field]  # the recipe's shorthands (tasks: h6) apply too
        try:
            return adapter.dump_python(adapter.validate_python(candidate), mode="json")
        except ValidationError as exc:
            first_error = first_error or exc
    raise DuskError(f"{where}: cannot use {text!r} for field {field!r}: {_error_text(first_error)}")


def dump_fields(obj: Any) -> dict:
    """A validated schema object as plain JSON values (runner-owned fields dropped): the stage's settings."""
    data = TypeAdapter(type(obj)).dump_python(obj, mode="json")
    return {name: value for name, value in data.items() if name not in RUNNER_FIELDS}


def with_runner_fields(obj: Any, **values: Any) -> Any:
    """A copy of a config with the runner-owned fields it has (out, force, resume) set."""
    return with_values(obj, {name: value for name, value in values.items() if name in _all_fields(type(obj))})


def with_values(obj: Any, values: dict[str, Any]) -> Any:
    """A copy of a validated config with `values` set as they are (paths filled in where stage names stood)."""
    if isinstance(obj, BaseModel):
        return obj.model_copy(update=values)
    return dataclasses.replace(obj, **values)
