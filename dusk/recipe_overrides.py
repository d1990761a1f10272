"""Command-line overrides of a recipe: `STAGE.FIELD=VALUE` (the value's text coerced to the field's type, through its
own validators) and `budget=NAME`. They apply last, over defaults, the stage's own fields and the budget.

    dusk run recipes/solar-mini.yaml sft_v1.lr=1e-5 budget=cpu
    python -c "from dusk.recipe_overrides import parse_overrides; print(parse_overrides(['sft.lr=1e-5']))"
"""

from dataclasses import dataclass

import yaml

from dusk.errors import DuskError
from dusk.stages import RUNNER_FIELDS, coerce, field_specs, get_kind


@dataclass(frozen=True)
class Override:
    stage: str
    field: str
    text: str


def parse_overrides(items: list[str] | tuple[str, ...]) -> tuple[str | None, list[Override]]:
    """`budget=NAME` and `STAGE.FIELD=VALUE` items -> (budget, overrides)."""
    budget, overrides = None, []
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise DuskError(f"override {item!r}: expected STAGE.FIELD=VALUE (or budget=NAME)")
        if key == "budget":
            budget = text
            continue
        stage, dot, name = key.rpartition(".")
        if not dot or not stage or not name:
            raise DuskError(f"override {item!r}: expected STAGE.FIELD=VALUE, e.g. sft_v1.lr=1e-5 (or budget=NAME)")
        overrides.append(Override(stage, name, text))
    return budget, overrides


def apply_override(fields: dict, kind_name: str, override: Override, where: str) -> None:
    """Set one override in a stage's raw values, its text coerced to the field's type (wiring keys as YAML)."""
    kind = get_kind(kind_name)
    specs = field_specs(kind)
    if override.field in ("from", "for_each", "inputs", "launch"):
        fields[override.field] = yaml.safe_load(override.text)
    elif override.field == "kind":
        raise DuskError(f"override {where}.kind: a stage's kind cannot be overridden")
    elif override.field not in specs:
        owned = " (set by the runner)" if override.field in RUNNER_FIELDS else ""
        raise DuskError(
            f"override {where}.{override.field}: stage {where} ({kind_name}) has no field {override.field!r}{owned}; "
            f"valid fields: {', '.join(specs)}"
        )
    else:
        fields[override.field] = coerce(kind, override.field, override.text, f"override {where}.{override.field}")


def check_override_targets(overrides: list[Override], raw_stages: dict, expanded: dict) -> None:
    """Refuse an override whose stage is neither a recipe stage nor a `for_each` instance, listing the stages."""
    for override in overrides:
        if override.stage not in raw_stages and override.stage not in expanded:
            known = ", ".join([*raw_stages, *(n for n in expanded if n not in raw_stages)])
            raise DuskError(f"override {override.stage}.{override.field}: no stage {override.stage!r}; stages: {known}")
