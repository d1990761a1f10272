"""Content hashes for files and model directories (cache keys, provenance in results).

python -c "from dusk.hashing import sha256_file; print(sha256_file('model.safetensors'))"
"""

import hashlib
from pathlib import Path

_CHUNK = 1 << 22


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_dir(path: Path) -> str:
    """Hex sha256 over every file of a directory (relative names and contents, in sorted order)."""
    digest = hashlib.sha256()
    root = Path(path)
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(root)).encode())
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()
