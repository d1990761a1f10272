"""Locate a dataset's files under the local data directory (`$DUSK_DATA_DIR`), with an error that says how to fix it.

DUSK_DATA_DIR=../shared/data python -c "from dusk.data.paths import data_file; print(data_file('gsm8k', 'test.jsonl'))"
"""

from pathlib import Path

from dusk.errors import DuskError
from dusk.settings import data_dir


def data_root() -> Path:
    """The local data directory, or an error explaining `DUSK_DATA_DIR`."""
    root = data_dir()
    if root is None:
        raise DuskError(
            "no data directory: set DUSK_DATA_DIR to the folder holding the datasets "
            "(e.g. export DUSK_DATA_DIR=../shared/data; `make` sets it when ../shared/data exists)"
        )
    if not root.is_dir():
        raise DuskError(f"DUSK_DATA_DIR={root} is not a directory; point it at the folder holding the datasets")
    return root


def data_file(dataset: str, relative: str) -> Path:
    """The path of `relative` inside dataset folder `dataset`, checked to exist."""
    root = data_root()
    path = root / dataset / relative
    if not path.is_file():
        raise DuskError(
            f"data file missing for {dataset!r}: looked for {path} (DUSK_DATA_DIR={root}); "
            f"put the file there or set DUSK_DATA_DIR to a folder with {dataset}/{relative}"
        )
    return path
