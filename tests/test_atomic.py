"""Atomic outputs: leftovers of killed writers are cleaned by the next write, a replaced output moved aside by a
killed writer comes back, and outputs get the user's umask (not mkdtemp's private 0700)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dusk.atomic import atomic_output_dir, atomic_output_file, remove_stale_temps


def dead_pid() -> int:
    """The PID of a process that has already exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    out = tmp_path / "model"
    stale_dir = tmp_path / f".model.tmp-{dead_pid()}-abc"
    stale_dir.mkdir()
    (stale_dir / "model.safetensors").write_bytes(b"x" * 1000)
    live = tmp_path / f".model.tmp-{os.getpid()}-def"
    live.mkdir()
    other = tmp_path / ".other.tmp-1-x"  # another output's temporary is not ours to touch
    other.mkdir()
    with atomic_output_dir(out) as tmp:
        (tmp / "config.json").write_text("{}")
    assert not stale_dir.exists() and live.exists() and other.exists()
    assert (out / "config.json").is_file()


def test_a_replaced_output_moved_aside_by_a_killed_writer_is_restored(tmp_path: Path) -> None:
    out = tmp_path / "model"
    old = tmp_path / f".model.old-{dead_pid()}"
    old.mkdir()
    (old / "config.json").write_text('{"old": true}')
    remove_stale_temps(out)
    assert (out / "config.json").read_text() == '{"old": true}' and not old.exists()


def test_a_moved_aside_copy_is_deleted_when_the_new_output_arrived(tmp_path: Path) -> None:
    out = tmp_path / "model"
    out.mkdir()
    old = tmp_path / f".model.old-{dead_pid()}"
    old.mkdir()
    assert remove_stale_temps(out) == [old] and not old.exists() and out.is_dir()


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_outputs_follow_the_umask(tmp_path: Path, mask: int) -> None:
    previous = os.umask(mask)
    try:
        with atomic_output_dir(tmp_path / "dir") as tmp:
            (tmp / "f").write_text("x")
        with atomic_output_file(tmp_path / "file.json") as tmp:
            tmp.write_text("{}")
    finally:
        os.umask(previous)
    assert (tmp_path / "dir").stat().st_mode & 0o777 == 0o777 & ~mask
    assert (tmp_path / "file.json").stat().st_mode & 0o777 == 0o666 & ~mask


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_output_dir(tmp_path / "out") as tmp:
        (tmp / "half").write_text("x")
        raise RuntimeError("killed midway")
    assert os.listdir(tmp_path) == []
