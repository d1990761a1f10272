"""What a model directory says about itself: the stage that wrote it (its `dusk_upscale.json`, `dusk_merge.json` or
`dusk_train.json` + `dusk_train_log.jsonl`), its parents with the sha256 of their weights, and its data with hashes.

    python -c "from dusk.cards.provenance import read_provenance; print(read_provenance('runs/sft').parents)"

A parent's hash covers its weights only (every `*.safetensors` file: relative name and contents, in sorted order),
so regenerating a parent's card or copying a tokenizer file does not change the hash its children record.
"""

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from dusk.errors import DuskError

RECORDS = {"dusk_upscale.json": "upscale", "dusk_merge.json": "merge", "dusk_train.json": "train"}
TRAIN_LOG = "dusk_train_log.jsonl"


@dataclass(frozen=True)
class Parent:
    """One model the directory was made from: the argument as given, and the sha256 of its weights."""

    name: str
    sha256: str


@dataclass(frozen=True)
class DataSource:
    """One dataset a training stage read: its name or path, hub id (if any), file hashes, decontamination report."""

    name: str
    role: str  # "training" or "held-out"
    hub_id: str | None
    files: dict[str, str]  # path -> sha256
    decontamination: dict | None = None  # the report of `dusk data decontaminate` that wrote this file, if found


@dataclass
class Provenance:
    """Everything a card says, read from the directory's own files."""

    model_dir: Path
    stage: str  # upscale | merge | pretrain | sft | dpo | sdpo
    record: dict  # the stage's record file, as written
    parents: list[Parent]
    data: list[DataSource] = field(default_factory=list)
    train_log: list[dict] = field(default_factory=list)


def read_provenance(model_dir: Path) -> Provenance:
    """Read a model directory dusk wrote; refuse one without a dusk record, or whose parents cannot be hashed."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise DuskError(f"{model_dir}: no such model directory")
    found = [name for name in RECORDS if (model_dir / name).is_file()]
    if not found:
        records = ", ".join(RECORDS)
        raise DuskError(f"{model_dir}: not a model dusk wrote (it has none of {records}); dusk cards describe those")
    record = _read_json(model_dir / found[0])
    kind = RECORDS[found[0]]
    if kind == "upscale":
        return Provenance(model_dir, "upscale", record, _parents(model_dir, _upscale_models(record)))
    if kind == "merge":
        return Provenance(model_dir, "merge", record, _parents(model_dir, merge_models(record)))
    return _train_provenance(model_dir, record)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DuskError(f"{path}: cannot read dusk's record ({exc})") from exc
    if not isinstance(data, dict):
        raise DuskError(f"{path}: expected a JSON object (dusk's record), got a {type(data).__name__}")
    return data


def _upscale_models(record: dict) -> list[str]:
    return _distinct(source["model"] for item in record.get("slices", []) for source in item.get("sources", []))


def merge_models(record: dict) -> list[str]:
    """A merge's input models in the order its config names them: the base first, then models or slice sources."""
    names = [record["base_model"]] if record.get("base_model") else []
    names += [entry["model"] for entry in record.get("models") or []]
    for item in record.get("slices") or []:
        names += [item["base_model"]] if item.get("base_model") else []
        names += [source["model"] for source in item.get("sources", [])]
    return _distinct(names)


def _distinct(names) -> list[str]:
    return list(dict.fromkeys(names))


def _train_provenance(model_dir: Path, record: dict) -> Provenance:
    config = record.get("config") or {}
    stage = str(record.get("stage", "train"))
    if stage == "dpo" and "steps" in config:
        stage = "sdpo"
    model = str(config.get("model") or record.get("source_model") or "")
    if not model:
        raise DuskError(f"{model_dir / 'dusk_train.json'}: names no source model (config.model)")
    parents = _parents(model_dir, [model], {model: record.get("source_model")})
    data = [data_source(config["data"], "training")] if config.get("data") else []
    if config.get("eval_data"):
        data.append(data_source(config["eval_data"], "held-out"))
    return Provenance(model_dir, stage, record, parents, data, _read_log(model_dir / TRAIN_LOG))


def _read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash: the curve is a summary, the rest of the log still counts
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _parents(model_dir: Path, names: list[str], resolved: dict[str, str | None] | None = None) -> list[Parent]:
    return [Parent(name, parent_hash(model_dir, name, (resolved or {}).get(name))) for name in names]


def parent_hash(model_dir: Path, name: str, resolved: str | None = None) -> str:
    """sha256 of a parent's weights; a parent that cannot be hashed is refused with one line saying why."""
    from dusk.models.io import resolve_model

    where = f"{model_dir}: parent model {name!r}"
    try:
        directory = Path(resolved) if resolved and Path(resolved).is_dir() else resolve_model(name)
    except DuskError as exc:
        hint = "relative paths are read from the current directory"
        raise DuskError(f"{where} cannot be hashed: {exc} ({hint})") from exc
    try:
        return weights_sha256(directory)
    except OSError as exc:
        raise DuskError(f"{where} cannot be hashed: {directory}: {exc.strerror or exc}") from exc


def weights_sha256(directory: Path) -> str:
    """sha256 over a model directory's weight files (relative names and file hashes, sorted)."""
    from dusk.hashing import HashMemo
    from dusk.settings import cache_dir

    files = _weight_files(Path(directory))
    if not files:
        raise DuskError(f"{directory}: has no weights to hash (no *.safetensors, *.bin or *.pt files)")
    memo = HashMemo(cache_dir() / "weight_hashes.json")
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(directory)).encode())
        digest.update(memo.sha256(file).encode())
    return digest.hexdigest()


def _weight_files(directory: Path) -> list[Path]:
    """The safetensors files; for a model stored otherwise (DUSK_ALLOW_PICKLE=1), its .bin / .pt files."""
    for patterns in (("*.safetensors",), ("*.bin", "*.pt", "*.pth")):
        files = sorted(p for pattern in patterns for p in directory.rglob(pattern) if p.is_file())
        if files:
            return files
    return []


def data_source(value: str, role: str) -> DataSource:
    """A training `data` value (dataset name, data file or mixture YAML) with its hub id and file hashes."""
    from dusk.hashing import sha256_file

    path = Path(value).expanduser()
    if path.is_file():
        return DataSource(value, role, None, {str(path): sha256_file(path)}, _decontamination_report(path))
    from dusk.data.registry import DATASETS, local_files

    info = DATASETS.get(value)
    if info is None:  # a hub id (org/name[:config][@split]), or a file gone since training: named, without hashes
        hub_id = value.split("@")[0].split(":")[0] if value.count("/") == 1 and not path.exists() else None
        return DataSource(value, role, hub_id, {})
    hub_id = info.hub.split("@")[0].split(":")[0] if info.hub else None
    return DataSource(value, role, hub_id, {str(p): sha256_file(p) for p in local_files(info)})


def _decontamination_report(data_file: Path) -> dict | None:
    """The report a decontamination stage wrote beside its data (RUN_DIR/artifacts/<stage>/report.json)."""
    report = data_file.parent / "report.json"
    if not report.is_file():
        return None
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and "total" in data else None
