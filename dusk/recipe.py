"""A recipe: named stages (each a `kind:` and that kind's fields) wired into a DAG by `from:`/`inputs:`, plus a
`report:` section grouping stages into the paper's tables. Everything is checked here, before any work starts.

    stages:
      dus:   {kind: upscale, model: smollm2-135m, drop: 8}
      sft:   {kind: sft, from: dus, data: alpaca_gpt4, max_steps: 30}
      evals: {kind: eval, for_each: [dus, sft], tasks: h6, subset: tiny}
    report:
      tables: [{name: main, caption: "Table 2 layout", rows: [dus, sft]}]

Values apply in this order: `defaults: {KIND: {...}}` < the stage's own fields < `budgets: {NAME: {KIND or STAGE:
{...}}}` chosen by `budget: NAME` < command-line overrides `STAGE.FIELD=VALUE` (and `budget=NAME`).

A top-level `launch: {processes: N, shard: none|fsdp, device: auto|cpu|cuda}` (over which `dusk run --processes N`
applies) sets how training stages run; a stage's own `launch:` mapping wins over it field by field (dusk/launch.py).

    python -c "from dusk.recipe import load_recipe; print(list(load_recipe('recipes/tiny.yaml').stages))"
"""

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dusk.errors import DuskError
from dusk.launch import EVALUATION_KINDS, Launch, parse_launch, takes_launch
from dusk.recipe_checks import (
    check_drop_field,
    check_external_inputs,
    check_recipe_name,
    check_ref_kinds,
    check_stage_name,
)
from dusk.recipe_overrides import Override, apply_override, check_override_targets, parse_overrides
from dusk.recipe_report import ReportTable, build_report, check_keys, mapping
from dusk.stages import dump_fields, field_specs, get_kind, validate
from dusk.yaml_file import read_yaml_text

TOP_KEYS = ("name", "description", "defaults", "budget", "budgets", "launch", "stages", "report")


@dataclass(frozen=True)
class Stage:
    """One stage after defaults, budget and overrides: its kind, its fields and the stages it reads."""

    name: str
    kind: str
    fields: dict[str, Any]  # recipe values (input fields still hold stage names; see `refs`)
    refs: dict[str, tuple[str, ...]]  # field -> the stages whose artifacts it takes, in order
    settings: dict[str, Any] = field(default_factory=dict)  # every field with defaults filled (for the cache key)
    template: str | None = None  # the `for_each` stage this one was expanded from
    launch: Launch | None = None  # processes, sharding and device of a training or eval stage (None: other kinds)
    config: Any = None  # the kind's typed config, validated once here; input fields still name their stages

    def config_with_inputs(self, artifacts: dict[str, Path]) -> Any:
        """The typed config with every input stage's name replaced by that stage's artifact path (not validated
        again: a path stands where a stage name was)."""
        from dusk.stages import with_values

        values = {}
        for name, refs in self.refs.items():
            value = getattr(self.config, name)
            if isinstance(value, list | tuple):
                values[name] = type(value)(str(artifacts[v]) if v in refs else v for v in value)
            else:
                values[name] = str(artifacts[value])
        return with_values(self.config, values)

    @property
    def depends(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name for names in self.refs.values() for name in names))


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    path: Path
    text: str
    overrides: tuple[str, ...]
    stages: dict[str, Stage]  # in dependency order
    title: str
    tables: tuple[ReportTable, ...]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def report_spec(self) -> dict:
        """The report section as plain data (stored with each run, so reports need only the store)."""
        return {
            "title": self.title,
            "tables": [
                {"name": t.name, "caption": t.caption, "eval": t.eval, "rows": [vars(r) for r in t.rows]}
                for t in self.tables
            ],
        }


# reading ----------------------------------------------------------------------------------------------------------
def read_recipe_yaml(path: Path) -> tuple[dict, str]:
    data, text = read_yaml_text(path, "recipe")
    if not isinstance(data, dict):
        raise DuskError(f"{path}: a recipe is a mapping with a `stages:` section")
    return data, text


# stages -----------------------------------------------------------------------------------------------------------
def _layered(name: str, raw: dict, data: dict, budget: dict) -> dict:
    """The stage's raw values: kind defaults < its own < the budget's kind entry < the budget's stage entry."""
    kind = raw.get("kind")
    if not isinstance(kind, str):
        raise DuskError(f"stage {name}: missing `kind:`")
    get_kind(kind)  # unknown kinds list the known ones
    defaults = mapping(mapping(data.get("defaults"), "defaults").get(kind), f"defaults.{kind}")
    return {
        **defaults,
        **raw,
        **mapping(budget.get(kind), f"budget entry {kind}"),
        **mapping(budget.get(name), f"budget entry {name}"),
    }


def _expand(name: str, values: dict) -> list[tuple[str, dict, str | None]]:
    """A `for_each: [a, b]` stage -> stages `name/a`, `name/b`, each `from:` its model."""
    targets = values.pop("for_each", None)
    if targets is None:
        return [(name, values, None)]
    if isinstance(targets, str):
        targets = [targets]
    if not isinstance(targets, list) or not targets or "from" in values:
        raise DuskError(f"stage {name}: for_each expects a non-empty list of stage names (and no `from:`)")
    return [(f"{name}/{target}", {**values, "from": target}, name) for target in targets]


def _names(value: Any) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


def _resolve_refs(name: str, values: dict, all_names: set[str]) -> dict[str, tuple[str, ...]]:
    """Which fields take which stages' artifacts: `from:`, `inputs:` and input fields whose values name a stage."""
    kind = get_kind(values["kind"])
    refs: dict[str, tuple[str, ...]] = {}
    explicit = dict(mapping(values.pop("inputs", None), f"stage {name}: inputs"))
    if "from" in values:
        explicit[(*kind.inputs, *kind.data_inputs)[0]] = values.pop("from")
    input_fields = (*kind.inputs, *kind.data_inputs)
    for target_field, stages in explicit.items():
        if target_field not in input_fields:
            raise DuskError(
                f"stage {name}: field {target_field!r} does not take a stage's output; input fields of "
                f"{kind.name}: {', '.join(input_fields)}"
            )
        for stage in _names(stages):
            if stage not in all_names:
                known = ", ".join(sorted(all_names))
                raise DuskError(f"stage {name}: input stage {stage!r} does not exist; stages: {known}")
        values[target_field] = stages
    for input_field in input_fields:
        if input_field in values:
            found = tuple(v for v in _names(values[input_field]) if isinstance(v, str) and v in all_names)
            if found:
                refs[input_field] = found
    return refs


def _order(stages: dict[str, Stage]) -> list[str]:
    """Dependency order (file order among independent stages); a cycle is an error naming its stages."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = path[path.index(name) :] + [name]
            raise DuskError(f"the stages form a cycle: {' -> '.join(cycle)}")
        state[name] = "visiting"
        for dep in stages[name].depends:
            visit(dep, [*path, name])
        state[name] = "done"
        order.append(name)

    for name in stages:
        visit(name, [])
    return order


def build_stages(
    data: dict, budget_name: str | None, overrides: list[Override], launch: dict[str, Any] | None = None
) -> dict[str, Stage]:
    """The recipe's stages, validated and in dependency order; `launch` holds the recipe-wide launch values."""
    raw_stages = mapping(data.get("stages"), "stages")
    if not raw_stages:
        raise DuskError("recipe has no stages; add a `stages:` mapping of NAME: {kind: ..., ...}")
    budgets = mapping(data.get("budgets"), "budgets")
    budget_name = budget_name or data.get("budget")
    if budget_name is not None and budget_name not in budgets:
        raise DuskError(f"budget {budget_name!r} is not defined; budgets: {', '.join(budgets) or 'none'}")
    budget = mapping(budgets.get(budget_name), f"budgets.{budget_name}") if budget_name else {}
    expanded: dict[str, tuple[dict, str | None]] = {}
    for name, raw in raw_stages.items():
        check_stage_name(name)
        values = _layered(name, dict(mapping(raw, f"stage {name}")), data, budget)
        for override in overrides:
            if override.stage == name:
                apply_override(values, values["kind"], override, name)
        for instance, instance_values, template in _expand(name, values):
            expanded[instance] = (instance_values, template)
    check_override_targets(overrides, raw_stages, expanded)
    for override in overrides:
        if override.stage in expanded and override.stage not in raw_stages:
            values = expanded[override.stage][0]
            apply_override(values, values["kind"], override, override.stage)
    return _validated(expanded, launch or {})


def _validated(expanded: dict[str, tuple[dict, str | None]], launch: dict[str, Any]) -> dict[str, Stage]:
    names = set(expanded)
    kinds = {name: values.get("kind") for name, (values, _) in expanded.items()}
    stages: dict[str, Stage] = {}
    errors: list[str] = []
    for name, (values, template) in expanded.items():
        try:
            values = dict(values)
            refs = _resolve_refs(name, values, names)
            kind = values.pop("kind")
            stage_launch = _stage_launch(name, kind, values, launch)
            check_ref_kinds(name, kind, refs, kinds)
            check_external_inputs(name, values, refs, kind)
            config = validate(get_kind(kind), values, f"stage {name}")
            if kind == "upscale":
                check_drop_field(name, values, refs)
            stages[name] = Stage(name, kind, values, refs, dump_fields(config), template, stage_launch, config)
        except DuskError as exc:
            errors.append(str(exc))
    if errors:
        raise DuskError("\n".join(errors) if len(errors) == 1 else "recipe errors:\n  " + "\n  ".join(errors))
    return {name: stages[name] for name in _order(stages)}


def _stage_launch(name: str, kind: str, values: dict, base: dict[str, Any]) -> Launch | None:
    """The stage's launch (its own `launch:` over the recipe's), popped from its fields; the launch's `shard` becomes
    the training config's `shard` field unless the stage sets that field itself."""
    own = values.pop("launch", None)
    if not takes_launch(kind):
        if own is not None:
            raise DuskError(
                f"stage {name}: kind {kind} takes no `launch:` (only training, eval and contamination stages do)"
            )
        return None
    launch = parse_launch({} if own is None else own, base, f"stage {name}: launch")
    if kind in EVALUATION_KINDS:
        return launch
    if "shard" in field_specs(get_kind(kind)):
        values.setdefault("shard", launch.shard)
    elif launch.shard != "none":
        raise DuskError(f"stage {name}: launch shard {launch.shard}: {kind} has no sharded training in this dusk yet")
    return launch


def _stem_name(path: Path) -> str:
    """A recipe without `name:` is named after its file, cleaned to a plain name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem).lstrip("._-") or "recipe"


def command_line_launch(values: dict[str, Any]) -> dict[str, Any]:
    """The launch values given as `dusk run` flags (--processes N, ...), each checked; None means not given."""
    given = {name: value for name, value in values.items() if value is not None}
    for name, value in given.items():
        parse_launch({name: value}, {}, "dusk run", flags=True)
    return given


def recipe_launch(data: dict, command_line: dict[str, Any]) -> dict[str, Any]:
    """The recipe-wide launch values: the recipe's `launch:` (checked) with the command line's over it."""
    top = data.get("launch")
    top = {} if top is None else top
    parse_launch(top, {}, "launch")
    return {**top, **command_line}


def load_recipe(
    path: Path | str, overrides: list[str] | tuple[str, ...] = (), launch: dict[str, Any] | None = None
) -> Recipe:
    """Read, expand and validate a recipe with command-line overrides (`launch`: `dusk run --processes N` and the
    other launch flags); every error is raised here."""
    path = Path(path)
    data, text = read_recipe_yaml(path)
    check_keys(data, TOP_KEYS, str(path))
    budget, parsed = parse_overrides(overrides)
    command_line = command_line_launch(launch or {})
    try:
        stages = build_stages(data, budget, parsed, recipe_launch(data, command_line))
        title, tables = build_report(data, stages)
    except DuskError as exc:
        raise DuskError(f"{path}: {exc}") from exc
    name = check_recipe_name(data["name"], str(path)) if data.get("name") is not None else _stem_name(path)
    return Recipe(name, str(data.get("description", "")), path, text, tuple(overrides), stages, title, tables)
