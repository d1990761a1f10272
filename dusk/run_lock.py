"""One `dusk run` at a time per run directory: an exclusive lock on RUN_DIR/state/run.lock, held while the run works.

The lock is an OS file lock (`flock`), so the kernel releases it when its process dies, even by `kill -9`: a killed
run never leaves a lock that blocks the next one. The file holds the holder's PID, to name it when refusing.

    with hold_run_dir(Path("runs/tiny")):
        ...  # the run's work
"""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dusk.errors import DuskError

LOCK_NAME = "run.lock"


def lock_path(run_dir: Path) -> Path:
    return Path(run_dir) / "state" / LOCK_NAME


@contextmanager
def hold_run_dir(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock, or refuse at once naming the process that holds it."""
    path = lock_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(path)
            raise DuskError(
                f"run directory {run_dir} is in use by another dusk run ({holder}); wait for it to finish, or pass "
                "another --run-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # closing releases the lock


def run_dir_in_use(run_dir: Path) -> bool:
    """True while some process holds the run directory's lock (a `running` run with a free lock was killed)."""
    path = lock_path(run_dir)
    if not path.is_file():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _read_holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "pid unknown"
