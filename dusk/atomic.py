"""Write outputs so that a reader never sees half of one: build in a temporary sibling, rename at the end.

with atomic_output_dir(Path("runs/out"), force=False) as tmp:
    (tmp / "config.json").write_text("{}")
# runs/out now exists, complete; on an exception nothing is left behind

A temporary sibling is named `.NAME.tmp-PID-XXXX`, so a process killed with `kill -9` (which runs no clean-up)
leaves one that the next write of the same output recognises as stale (its PID is dead) and deletes. Outputs get
the permissions the user's umask gives (not mkdtemp's private 0700).
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
    if out.exists() and not out.is_dir():
        raise DuskError(f"output path {out} exists and is not a directory")
    if out.exists() and not force:
        raise DuskError(f"output directory {out} already exists; pass --force to replace it")


def check_writable_parent(out: Path) -> None:
    """Refuse, before any work, an output whose nearest existing parent is not a writable directory."""
    parent = Path(out).absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise DuskError(f"output path {out}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DuskError(f"output path {out}: directory {parent} is not writable")


def current_umask() -> int:
    """The process umask (reading it means setting it; it is put back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def pid_alive(pid: int) -> bool:
    """True when a process with this PID exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _temp_prefix(out: Path) -> str:
    return f".{out.name}.tmp-"


def remove_stale_temps(out: Path) -> list[Path]:
    """Delete the temporary siblings of `out` left by dead processes (`.NAME.tmp-PID-*`); return what was removed."""
    out = Path(out)
    if not out.parent.is_dir():
        return []
    removed = _restore_stale_old(out)
    prefix = _temp_prefix(out)
    for path in out.parent.glob(f"{prefix}*"):
        pid_text = path.name[len(prefix) :].split("-", 1)[0]
        if not pid_text.isdigit() or pid_alive(int(pid_text)):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _restore_stale_old(out: Path) -> list[Path]:
    """A replaced output moved aside (`.NAME.old-PID`) by a process killed before it finished: put it back if the
    new output never arrived, else delete it."""
    removed = []
    for old in out.parent.glob(f".{out.name}.old-*"):
        pid_text = old.name.rsplit("-", 1)[-1]
        if not pid_text.isdigit() or pid_alive(int(pid_text)):
            continue
        if out.exists():
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
            removed.append(old)
        else:
            old.rename(out)
    return removed


@contextmanager
def atomic_output_dir(out: Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory next to `out`; on success it is renamed to `out` (replacing it if `force`)."""
    out = Path(out)
    check_output_dir(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_temp_prefix(out)}{os.getpid()}-", dir=out.parent))
    tmp.chmod(0o777 & ~current_umask())
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
    remove_stale_temps(out)
    fd, name = tempfile.mkstemp(prefix=f"{_temp_prefix(out)}{os.getpid()}-", dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.chmod(0o666 & ~current_umask())
    try:
        yield tmp
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
