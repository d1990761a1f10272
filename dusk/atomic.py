"""Write outputs so that a reader never sees half of one: build in a temporary sibling, rename at the end.

with atomic_output_dir(Path("runs/out"), force=False) as tmp:
    (tmp / "config.json").write_text("{}")
# runs/out now exists, complete; on an exception nothing is left behind
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dusk.errors import DuskError


def check_output_dir(out: Path, force: bool) -> None:
    """Refuse an existing output directory unless `force` is set (it is then replaced at the end)."""
    if out.exists() and not force:
        raise DuskError(f"output directory {out} already exists; pass --force to replace it")
    if out.exists() and not out.is_dir():
        raise DuskError(f"output path {out} exists and is not a directory")


@contextmanager
def atomic_output_dir(out: Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory next to `out`; on success it is renamed to `out` (replacing it if `force`)."""
    out = Path(out)
    check_output_dir(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def atomic_output_file(out: Path) -> Iterator[Path]:
    """Yield a temporary path next to `out`; on success it replaces `out` atomically."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.tmp-", dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
