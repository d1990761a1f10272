"""The checks a recipe passes before any work starts, beyond each field's type: stage and recipe names that are plain
path components, inputs wired to stages of the right kind, external models and datasets that exist, and SOLAR's
`drop` against the model's layer count.

    python -c "from dusk.recipe_checks import check_stage_name; check_stage_name('sft_v1')"
"""

import re
from pathlib import Path
from typing import Any

from dusk.errors import DuskError
from dusk.stages import get_kind


def _names(value: Any) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


# A stage name becomes a folder name (artifacts/NAME, work/NAME, logs/NAME.log); a recipe name the default run
# directory runs/NAME. Both must be one plain path component.
STAGE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
RECIPE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_stage_name(name: Any) -> None:
    """A stage name is a plain identifier (it names folders under the run directory)."""
    if not isinstance(name, str) or not STAGE_NAME.fullmatch(name):
        raise DuskError(
            f"stage name {name!r}: expected a plain identifier (letters, digits, '_' and '-', starting with a letter "
            "or '_'; quote it if YAML reads it as a number)"
        )


def check_recipe_name(name: Any, where: str) -> str:
    """The recipe's `name:` is one plain path component: it becomes the default run directory runs/NAME."""
    if not isinstance(name, str) or not RECIPE_NAME.fullmatch(name):
        raise DuskError(
            f"{where}: name {name!r}: expected a plain name (letters, digits, '_', '-' and '.', starting with a letter "
            "or digit; no '/'), since it becomes the run directory runs/NAME"
        )
    return name


def check_ref_kinds(name: str, kind_name: str, refs: dict[str, tuple[str, ...]], kinds: dict[str, str]) -> None:
    """A model field takes a stage that writes a model; a data field one that writes data."""
    kind = get_kind(kind_name)
    for field_name, sources in refs.items():
        wanted = "model" if field_name in kind.inputs else "data"
        for source in sources:
            made = get_kind(kinds[source]).artifact
            if made != wanted:
                raise DuskError(
                    f"stage {name}: field {field_name}: stage {source!r} ({kinds[source]}) writes {made}, but "
                    f"{field_name} takes a stage that writes a {wanted}"
                )


# A value with one of these forms is a path, never a Hugging Face id: a missing relative path is refused as a path.
PATH_PREFIXES = ("./", "../", "/", "~", ".")
PATH_SUFFIXES = (".yaml", ".yml", ".jsonl", ".json", ".txt", ".gguf", ".safetensors", ".csv", ".tsv", ".parquet",
                 ".gz", ".bz2", ".bin", ".pt")  # fmt: skip


def is_path_like(value: str) -> bool:
    """True when `value` can only mean a path: it starts with ./ ../ / ~ or ., ends in a file suffix, or has more
    than one '/' before any @revision. `org/name[@rev]` (one '/') may be a hub id."""
    return value.startswith(PATH_PREFIXES) or value.endswith(PATH_SUFFIXES) or value.split("@")[0].count("/") > 1


def check_external_inputs(name: str, values: dict, refs: dict, kind_name: str) -> None:
    """Input-field values that name no stage must be a built-in model, a model path or a hub model id; data a
    dataset, a file or a hub dataset id; a mixture's sources likewise (see `is_path_like` for what a path is)."""
    kind = get_kind(kind_name)
    for input_field in kind.inputs:
        for value in _names(values.get(input_field)):
            if value is None or not isinstance(value, str) or value in refs.get(input_field, ()):
                continue
            try:
                check_model_value(value, bool(values.get("allow_pickle")))
            except DuskError as exc:
                raise DuskError(f"stage {name}: field {input_field}: {exc}") from exc
    for input_field in kind.data_inputs:
        value = values.get(input_field)
        if isinstance(value, str) and value not in refs.get(input_field, ()):
            _check_dataset(name, input_field, value)
    sources = values.get("sources")
    if kind_name == "mix" and isinstance(sources, list):
        for index, source in enumerate(sources):
            if isinstance(source, dict) and isinstance(source.get("dataset"), str):
                _check_dataset(name, f"sources[{index}].dataset", source["dataset"])


def check_model_value(value: str, allow_pickle: bool = False) -> None:
    """A built-in model, an existing model path, or a hub id `org/name[@rev]` (in the hub cache when offline)."""
    from dusk.hub import hub_offline, parse_hub_id, resolve_hub_model
    from dusk.models.builtin import BUILTIN_MODELS
    from dusk.models.io import check_model_path, pickle_allowed

    if value in BUILTIN_MODELS:
        return
    path = Path(value).expanduser()
    if path.exists():
        check_model_path(path)
        return
    hub_id = None if is_path_like(value) else parse_hub_id(value)
    if hub_id is None:
        raise DuskError(
            f"{value!r} is neither a stage of this recipe nor a built-in model ({', '.join(BUILTIN_MODELS)}) nor an "
            "existing path" + (" (it is written as a path, so it is not taken for a hub id)" if "/" in value else "")
        )
    if hub_offline():  # online, the stage fetches it; offline it must be in the hub cache now
        try:
            resolve_hub_model(hub_id, allow_pickle or pickle_allowed())
        except DuskError as exc:
            raise DuskError(f"{value!r} is no existing path, and as a hub id: {exc}") from exc


def check_drop_field(name: str, values: dict, refs: dict) -> None:
    """SOLAR's `drop` against the model's layer count, when the model is not another stage's output."""
    from dusk.models.io import known_layer_count
    from dusk.models.upscale import check_drop

    model, drop = values.get("model"), values.get("drop")
    if not isinstance(model, str) or not isinstance(drop, int) or "model" in refs:
        return
    layers = known_layer_count(model) or _hub_layer_count(model)
    if layers is not None:
        try:
            check_drop(layers, drop)
        except DuskError as exc:
            raise DuskError(f"stage {name}: field drop: {exc} ({model})") from exc


def _hub_layer_count(value: str) -> int | None:
    """The layer count of a hub model id already in the hub cache (None otherwise: nothing is fetched here)."""
    from dusk.hub import hub_offline, parse_hub_id, resolve_hub_model
    from dusk.models.io import known_layer_count

    hub_id = None if is_path_like(value) else parse_hub_id(value)
    if hub_id is None or not hub_offline():
        return None
    try:
        return known_layer_count(str(resolve_hub_model(hub_id, allow_pickle=True)))
    except DuskError:
        return None


def _check_dataset(stage: str, field_name: str, value: str) -> None:
    """A data value that names no stage: an existing file, a registry dataset, or a hub dataset id (in the hub cache
    when offline); a path-like value (see `is_path_like`) must exist."""
    from dusk.data.registry import DATASETS, hub_dataset
    from dusk.hub import HubId, hub_offline, resolve_hub_dataset

    if value in DATASETS or Path(value).expanduser().exists():
        return
    where = f"stage {stage}: field {field_name}: {value!r}"
    if is_path_like(value):
        raise DuskError(f"{where}: no such file (it is written as a path, so it is not taken for a dataset name or id)")
    spec = hub_dataset(value)
    if spec is None:
        known = ", ".join(sorted(DATASETS))
        raise DuskError(
            f"{where} is neither a stage of this recipe, nor a file, nor a known dataset ({known}), nor a hub dataset "
            "id org/name[:config][@split]"
        )
    if hub_offline():
        try:
            resolve_hub_dataset(HubId(spec.repo))
        except DuskError as exc:
            raise DuskError(f"{where} is no existing file, and as a hub dataset id: {exc}") from exc
