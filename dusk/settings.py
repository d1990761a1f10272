"""Where dusk keeps its cache and finds its data, from the environment.

DUSK_CACHE=/tmp/dusk-cache DUSK_DATA_DIR=../shared/data dusk models
"""

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache root: `$DUSK_CACHE`, else `~/.cache/dusk`."""
    return Path(os.environ.get("DUSK_CACHE") or Path.home() / ".cache" / "dusk").expanduser()


def data_dir() -> Path | None:
    """The local data root, `$DUSK_DATA_DIR`, or None when unset."""
    value = os.environ.get("DUSK_DATA_DIR")
    return Path(value).expanduser() if value else None
