"""Where the trainers get their records: the one small adapter between `--data` and the data layer.

The trainers consume plain records of three kinds:
  text         {"text": str}                                        (continued pretraining)
  instruction  {"prompt": str, "response": str}  (already rendered)  (SFT)
  preference   {"prompt": str, "chosen": str, "rejected": str}      (DPO, sDPO)

`load_records(data_arg, kind)` accepts a JSONL (or JSON array) file of such records, or a plain `.txt` file (one
text record), directly. Dataset names and mixture YAMLs go to the data layer (`dusk.data`), once it is installed.

    python -c "from dusk.train.data_source import load_records; print(len(load_records('pairs.jsonl', 'preference')))"
"""

import importlib.util
import json
from pathlib import Path
from typing import Literal

from dusk.errors import DuskError

Kind = Literal["text", "instruction", "preference"]
FIELDS: dict[str, tuple[str, ...]] = {
    "text": ("text",),
    "instruction": ("prompt", "response"),
    "preference": ("prompt", "chosen", "rejected"),
}
DATA_LAYER_MODULES = ("dusk.data.registry", "dusk.data.formats", "dusk.data.mixture")


def load_records(data_arg: str, kind: Kind) -> list[dict]:
    """Records of `kind` from a file path, a dataset name or a mixture YAML, checked for their fields."""
    path = Path(data_arg).expanduser()
    if path.is_file() and path.suffix in (".jsonl", ".json"):
        records = _read_json_records(path)
    elif path.is_file() and path.suffix == ".txt" and kind == "text":
        records = [{"text": path.read_text(encoding="utf-8", errors="replace")}]
    else:
        records = _from_data_layer(data_arg, kind)
    return [_checked(record, kind, data_arg, i) for i, record in enumerate(records)]


def _read_json_records(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DuskError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(data, list):
            raise DuskError(f"{path}: expected a JSON array of records, got {type(data).__name__}")
        return data
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DuskError(f"{path}:{number}: not a JSON record ({exc.msg})") from exc
    return records


def _checked(record: object, kind: Kind, source: str, index: int) -> dict:
    """The record, if it is a mapping with the kind's string fields."""
    if not isinstance(record, dict):
        raise DuskError(f"{source}: record {index} is a {type(record).__name__}, expected a {kind} record object")
    missing = [name for name in FIELDS[kind] if not isinstance(record.get(name), str)]
    if missing:
        raise DuskError(
            f"{source}: record {index} lacks string field(s) {', '.join(missing)} of a {kind} record "
            f"({', '.join(FIELDS[kind])}); it has {', '.join(record) or 'no fields'}"
        )
    return record


def data_layer_available() -> bool:
    """True once the data layer's registry, formats and mixture modules exist."""
    return all(importlib.util.find_spec(name) is not None for name in DATA_LAYER_MODULES)


def _from_data_layer(data_arg: str, kind: Kind) -> list[dict]:
    """Named datasets and mixture YAMLs, resolved and rendered to plain records by `dusk.data`."""
    if not data_layer_available():
        raise DuskError(
            f"--data {data_arg}: not a .jsonl/.json file of {kind} records ({', '.join(FIELDS[kind])}), "
            "and dataset names need the data layer (dusk.data.registry), which is not installed"
        )
    raise DuskError(f"--data {data_arg}: the data layer adapter is not written yet")
