"""Read raw rows from data files (JSON array, JSON Lines or .jsonl.gz, TSV, plain text); errors name the place.

Every reader returns a list of `Row(where, fields)`: `where` is "file:line" (or "file[index]" for a JSON array), so a
converter that finds a bad record can say exactly where it is. Files are UTF-8 (a leading byte-order mark is
accepted); any other encoding is refused with the line and byte offset of the first byte that is not UTF-8.

    python -c "from dusk.data.readers import read_rows; print(read_rows('train.jsonl')[0])"
"""

import gzip
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dusk.errors import DuskError

FLAN_COT_COLUMNS = ("question", "answer", "chain_of_thought")


@dataclass(frozen=True)
class Row:
    """One raw record as read from a file, before conversion."""

    where: str  # "file:line" or "file[index]", for error messages
    fields: dict  # the record's original fields, unchanged


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def not_utf8(path: Path) -> DuskError:
    """The error for a file that is not UTF-8: its line and the byte offset (in the decompressed data) of the first
    byte that does not decode."""
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as handle:
        data = handle.read()
    try:
        data.decode("utf-8")
        return DuskError(f"{path}: not UTF-8 text; re-encode it as UTF-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return DuskError(
            f"{path}:{line}: not UTF-8 text (byte {data[exc.start]:#04x} at byte offset {exc.start}); "
            "re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        )


@contextmanager
def _utf8(path: Path) -> Iterator[None]:
    """Turn a decoding failure while reading `path` (not UTF-8, broken gzip) into a one-line DuskError."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise not_utf8(path) from exc
    except (gzip.BadGzipFile, EOFError) as exc:
        raise DuskError(f"{path}: not a complete gzip file ({exc}); expected gzip-compressed text") from exc


def _read_text(path: Path) -> str:
    with _utf8(path), _open_text(path) as handle:
        return handle.read()


def _non_empty_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) for each line of the file that is not blank."""
    with _utf8(path), _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def read_jsonl_objects(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) for each non-empty line of a JSON Lines file (`.gz` is decompressed).

    A line that is not JSON, or not a JSON object, raises a DuskError naming the file and the line.
    """
    objects = []
    for number, line in _non_empty_lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DuskError(
                f"{path}:{number}: malformed JSON Lines record: {exc.msg} (column {exc.colno}); "
                "expected one JSON object per line"
            ) from exc
        if not isinstance(record, dict):
            raise DuskError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        objects.append((number, record))
    return objects


def read_jsonl(path: Path) -> list[Row]:
    """One JSON object per non-empty line (`.gz` is decompressed)."""
    return [Row(f"{path}:{number}", record) for number, record in read_jsonl_objects(path)]


def read_json(path: Path) -> list[Row]:
    """A JSON array of objects (the Alpaca / Dolly / LLaMA-Factory layout)."""
    text = _read_text(path)
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DuskError(
            f"{path}:{exc.lineno}: malformed JSON: {exc.msg} (column {exc.colno}); expected a JSON array of objects"
        ) from exc
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, list):
        raise DuskError(f"{path}: expected a JSON array of objects, got {type(records).__name__}")
    rows = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise DuskError(f"{path}[{index}]: expected a JSON object, got {type(record).__name__}")
        rows.append(Row(f"{path}[{index}]", record))
    return rows


def _split_tsv_line(path: Path, number: int, line: str, width: int) -> list[str]:
    cells = line.rstrip("\r\n").split("\t")
    if len(cells) != width:
        raise DuskError(
            f"{path}:{number}: malformed TSV record: expected {width} tab-separated columns, got {len(cells)}"
        )
    return [cell.replace("\\n", "\n") for cell in cells]


def read_tsv(path: Path, columns: tuple[str, ...] | None = None) -> list[Row]:
    """Tab-separated rows; `\\n` inside a cell becomes a newline (FLAN's convention).

    With `columns` the file has no header (FLAN CoT: question, answer, chain_of_thought); without, line 1 is the header.
    """
    rows = []
    for number, line in _non_empty_lines(path):
        if columns is None:
            columns = tuple(line.rstrip("\r\n").split("\t"))
            continue
        cells = _split_tsv_line(path, number, line, len(columns))
        rows.append(Row(f"{path}:{number}", dict(zip(columns, cells, strict=True))))
    return rows


def read_text(path: Path, split: str = "file") -> list[Row]:
    """Plain text as `{"text"}` rows: the whole file, one row per non-empty line, or per blank-line paragraph.

    Line endings are normalised to `\\n` (the Gutenberg books use CRLF).
    """
    text = _read_text(path).replace("\r\n", "\n")
    if split == "file":
        return [Row(f"{path}:1", {"text": text})] if text.strip() else []
    if split not in ("line", "paragraph"):
        raise DuskError(f"unknown text split {split!r}; expected file, line or paragraph")
    rows, number = [], 1
    separator = "\n" if split == "line" else "\n\n"
    for chunk in text.split(separator):
        if chunk.strip():
            rows.append(Row(f"{path}:{number}", {"text": chunk.strip("\n")}))
        number += chunk.count("\n") + separator.count("\n")
    return rows


def _first_tsv_cells(path: Path) -> list[str]:
    for _number, line in _non_empty_lines(path):
        return line.rstrip("\r\n").split("\t")
    return []


SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".json", ".json.gz", ".tsv", ".txt")


def check_input_file(path: Path) -> None:
    """Refuse a path that is not an existing file of a supported type (before any reading)."""
    if path.is_dir():
        raise DuskError(f"input {path} is a directory; expected a data file (.json, .jsonl, .tsv or .txt)")
    if not path.is_file():
        raise DuskError(f"input file {path} does not exist")
    if not path.name.lower().endswith(SUFFIXES):
        raise DuskError(f"{path}: unknown file type; expected .json, .jsonl, .jsonl.gz, .tsv or .txt")


def read_rows(path: Path) -> list[Row]:
    """Read any supported file by its extension: .json, .jsonl/.jsonl.gz, .tsv, .txt."""
    path = Path(path)
    check_input_file(path)
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
        return read_jsonl(path)
    if name.endswith((".json", ".json.gz")):
        return read_json(path)
    if name.endswith(".tsv"):
        header = _first_tsv_cells(path)
        known = {"text", "instruction", "question", "prompt"}
        return read_tsv(path, None if known & set(header) else FLAN_COT_COLUMNS)
    if name.endswith(".txt"):
        return read_text(path, "file")
    raise DuskError(f"{path}: unknown file type; expected .json, .jsonl, .jsonl.gz, .tsv or .txt")
