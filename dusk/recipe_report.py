"""A recipe's `report:` section: the paper's tables, each a caption and rows naming the recipe's stages (a model
stage, whose eval supplies the numbers, or an eval stage), and the checks recipes share for their mappings.

    report:
      title: SOLAR 10.7B, reproduced small
      tables: [{name: main, caption: "Table 2 layout", rows: [dus, {stage: sft, label: SFT v1}]}]

    python -c "from dusk.recipe_report import build_report; print(build_report.__doc__)"
"""

from dataclasses import dataclass
from typing import Any

from dusk.errors import DuskError

REPORT_KEYS = ("title", "tables")
TABLE_KEYS = ("name", "caption", "rows", "eval")
ROW_KEYS = ("stage", "label", "type")


@dataclass(frozen=True)
class ReportRow:
    stage: str  # a model stage (its eval supplies the numbers) or an eval stage
    label: str  # what the table prints in the model column
    type: str | None = None  # Pretrained / Instruction-tuned / Alignment-tuned / Merged; inferred when None


@dataclass(frozen=True)
class ReportTable:
    name: str
    caption: str
    rows: tuple[ReportRow, ...]
    eval: str | None = None  # which eval stage (or for_each template) provides the numbers when several do


def check_keys(found: dict, allowed: tuple[str, ...], where: str) -> None:
    """Refuse a key that is not in `allowed`, naming the first and listing the allowed ones."""
    unknown = [key for key in found if key not in allowed]
    if unknown:
        raise DuskError(f"{where}: unknown key {unknown[0]!r}; expected one of: {', '.join(allowed)}")


def mapping(value: Any, where: str) -> dict:
    """A recipe section that must be a mapping (absent: empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DuskError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


# report -----------------------------------------------------------------------------------------------------------
def _row(item: Any, where: str) -> ReportRow:
    if isinstance(item, str):
        return ReportRow(item, item)
    row = mapping(item, where)
    check_keys(row, ROW_KEYS, where)
    if "stage" not in row:
        raise DuskError(f"{where}: a row needs `stage:`")
    return ReportRow(row["stage"], str(row.get("label", row["stage"])), row.get("type"))


def build_report(data: dict, stages: dict[str, Any]) -> tuple[str, tuple[ReportTable, ...]]:
    """The report's title and tables, every row checked to name one of the recipe's `stages` (name -> Stage)."""
    report = mapping(data.get("report"), "report")
    check_keys(report, REPORT_KEYS, "report")
    templates = {s.template for s in stages.values() if s.template}
    tables = []
    for index, raw in enumerate(report.get("tables") or []):
        table = mapping(raw, f"report.tables[{index}]")
        check_keys(table, TABLE_KEYS, f"report.tables[{index}]")
        name = str(table.get("name", f"table{index + 1}"))
        rows = tuple(_row(item, f"report table {name}, row {i + 1}") for i, item in enumerate(table.get("rows") or []))
        if not rows:
            raise DuskError(f"report table {name}: no rows; list the stages it compares under `rows:`")
        for row in rows:
            if row.stage not in stages:
                raise DuskError(
                    f"report table {name}: row {row.stage!r} is not a stage of this recipe; stages: {', '.join(stages)}"
                )
        evaluator = table.get("eval")
        if evaluator is not None and evaluator not in stages and evaluator not in templates:
            raise DuskError(f"report table {name}: eval {evaluator!r} is not an eval stage of this recipe")
        tables.append(ReportTable(name, str(table.get("caption", name)), rows, evaluator))
    return str(report.get("title", data.get("name", "dusk report"))), tuple(tables)
