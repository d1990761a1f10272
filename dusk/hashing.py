"""Content hashes for files and model directories (cache keys, provenance in results), and `HashMemo`, which
remembers them by size and mtime so unchanged inputs are not re-read.

A directory's hash leaves out its model card (`README.md`) and the results the card was given
(`dusk_card_results.json`), at any depth: a card is documentation, rewritten after an evaluation (see
dusk/cards/refresh.py), and rewriting it must not change the identity of the model it describes.

python -c "from dusk.hashing import sha256_file; print(sha256_file('model.safetensors'))"
"""

import hashlib
import json
from pathlib import Path

_CHUNK = 1 << 22
NOT_IDENTITY = frozenset({"README.md", "dusk_card_results.json"})  # a model card and its results: not the model


def identity_files(root: Path) -> list[Path]:
    """The files whose names and contents make a directory's hash, sorted: every file but the model-card files."""
    return sorted(p for p in Path(root).rglob("*") if p.is_file() and p.name not in NOT_IDENTITY)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_dir(path: Path) -> str:
    """Hex sha256 over a directory's files but its model card (relative names and contents, in sorted order)."""
    digest = hashlib.sha256()
    root = Path(path)
    for file in identity_files(root):
        digest.update(str(file.relative_to(root)).encode())
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()


class HashMemo:
    """sha256 of files and directories, remembered by (size, mtime) so unchanged inputs are not re-read."""

    def __init__(self, path: Path):
        self.path = path
        self.memo: dict = json.loads(path.read_text()) if path.is_file() else {}

    def _signature(self, path: Path) -> list:
        files = [path] if path.is_file() else identity_files(path)
        return [[str(f.relative_to(path)) if f != path else "", f.stat().st_size, f.stat().st_mtime_ns] for f in files]

    def sha256(self, path: Path) -> str:
        path = Path(path).resolve()
        signature = self._signature(path)
        entry = self.memo.get(str(path))
        if entry and entry["signature"] == signature:
            return entry["sha256"]
        digest = sha256_file(path) if path.is_file() else sha256_dir(path)
        self.memo[str(path)] = {"signature": signature, "sha256": digest}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.memo))
        return digest
