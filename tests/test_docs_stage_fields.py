"""docs/recipes.md's table of stage kinds lists every kind, every field a recipe may set for it and the fields that
may name earlier stages, exactly as the configs and the registry define them: the table cannot drift from the code."""

import re
from pathlib import Path

from dusk.stages.kind import field_specs
from dusk.stages.registry import KINDS

DOC = Path(__file__).parent.parent / "docs" / "recipes.md"


def names(cell: str, training: list[str]) -> set[str]:
    """The field names of a table cell: comma-separated, explanations in parentheses left out, `training fields`
    standing for the training kinds' shared list."""
    plain = re.sub(r"\([^()]*\)", "", cell)
    found: set[str] = set()
    for part in (p.strip() for p in plain.split(",")):
        if part == "training fields":
            found |= set(training)
        elif part and part != "-":
            found.add(part.split()[0])
    return found


def stage_table() -> tuple[dict[str, tuple[str, str]], list[str]]:
    """kind -> (input fields cell, fields cell) from the table, and the shared training fields."""
    text = DOC.read_text()
    rows = {}
    for line in text.splitlines():
        if match := re.match(r"\| `(\w+)` \| .* \| (.*) \| (.*) \|$", line):
            rows[match.group(1)] = (match.group(2), match.group(3))
    shared = re.search(r"Training fields \(pretrain, sft, dpo, sdpo\): (.*?)\. The table", text, re.S)
    assert shared, "the training fields paragraph is missing"
    return rows, [name.strip() for name in shared.group(1).replace("\n", " ").split(",")]


def test_the_stage_kinds_table_lists_every_kind_and_field():
    rows, training = stage_table()
    assert set(rows) == set(KINDS)
    for kind_name, (inputs, fields) in rows.items():
        kind = KINDS[kind_name]
        assert names(fields, training) == set(field_specs(kind)), kind_name
        assert names(inputs, training) == set(kind.inputs) | set(kind.data_inputs), kind_name
