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


def check_external_inputs(name: str, values: dict, refs: dict, kind_name: str) -> None:
    """Input-field values that name no stage must be a built-in model or a model path; data a dataset or a file."""
    from dusk.models.builtin import BUILTIN_MODELS
    from dusk.models.io import check_model_path

    kind = get_kind(kind_name)
    for input_field in kind.inputs:
        for value in _names(values.get(input_field)):
            if value is None or not isinstance(value, str) or value in refs.get(input_field, ()):
                continue
            if value not in BUILTIN_MODELS and not Path(value).expanduser().exists():
                raise DuskError(
                    f"stage {name}: field {input_field}: {value!r} is neither a stage of this recipe nor a built-in "
                    f"model ({', '.join(BUILTIN_MODELS)}) nor an existing path"
                )
            if value not in BUILTIN_MODELS:
                try:
                    check_model_path(Path(value).expanduser())
                except DuskError as exc:
                    raise DuskError(f"stage {name}: field {input_field}: {exc}") from exc
    for input_field in kind.data_inputs:
        value = values.get(input_field)
        if isinstance(value, str) and value not in refs.get(input_field, ()) and not Path(value).expanduser().exists():
            _check_dataset(name, input_field, value)


def check_drop_field(name: str, values: dict, refs: dict) -> None:
    """SOLAR's `drop` against the model's layer count, when the model is not another stage's output."""
    from dusk.models.io import known_layer_count
    from dusk.models.upscale import check_drop

    model, drop = values.get("model"), values.get("drop")
    if not isinstance(model, str) or not isinstance(drop, int) or "model" in refs:
        return
    layers = known_layer_count(model)
    if layers is not None:
        try:
            check_drop(layers, drop)
        except DuskError as exc:
            raise DuskError(f"stage {name}: field drop: {exc} ({model})") from exc


def _check_dataset(stage: str, field_name: str, value: str) -> None:
    """A data value that names no stage and no file must be a registry dataset."""
    from dusk.data.registry import DATASETS

    if value not in DATASETS:
        raise DuskError(
            f"stage {stage}: field {field_name}: {value!r} is neither a stage of this recipe, nor a file, nor a known "
            f"dataset ({', '.join(sorted(DATASETS))})"
        )
