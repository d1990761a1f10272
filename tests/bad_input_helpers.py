"""Shared checks for the bad-input suites (tests/test_bad_inputs_*.py): a bad input is refused with exit code 2 and
one line on stderr naming the culprit, no traceback, and nothing that existed before is touched or left half-written.

    refused = assert_refused(["merge", str(a), str(b), "--weights", "nan,1", "--out", str(out)], "nan", capsys,
                             watch=[tmp_path])
"""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from dusk.cli import main


def snapshot(*roots: Path) -> dict[str, str]:
    """Every path under `roots` (the roots included) mapped to its kind and content hash: what 'untouched' means."""
    seen: dict[str, str] = {}
    for root in roots:
        root = Path(root)
        if not root.exists():
            seen[str(root)] = "absent"
            continue
        for path in [root, *sorted(root.rglob("*"))]:
            if path.is_symlink():
                seen[str(path)] = f"link:{path.readlink()}"
            elif path.is_dir():
                seen[str(path)] = "dir"
            else:
                seen[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return seen


def error_lines(stderr: str) -> list[str]:
    """The lines of stderr that are not argparse's usage block (usage lines and their indented continuations)."""
    lines = []
    in_usage = False
    for line in stderr.splitlines():
        if line.startswith("usage:"):
            in_usage = True
            continue
        if in_usage and line.startswith(" "):
            continue
        in_usage = False
        if line.strip():
            lines.append(line)
    return lines


def check_refusal(code: int, stderr: str, culprits: str | list[str]) -> str:
    """Assert exit code 2, no traceback and exactly one error line that names every culprit; return that line."""
    assert "Traceback" not in stderr, stderr
    lines = error_lines(stderr)
    assert code == 2, f"exit code {code}, stderr: {stderr}"
    assert len(lines) == 1, f"expected one error line, got: {lines}"
    for culprit in [culprits] if isinstance(culprits, str) else culprits:
        assert culprit.lower() in lines[0].lower(), f"{culprit!r} not named in: {lines[0]}"
    return lines[0]


def assert_refused(
    argv: list[str], culprits: str | list[str], capsys: pytest.CaptureFixture, watch: list[Path] = ()
) -> str:
    """Run `dusk ARGV` in this process and check the refusal; the `watch` paths must be exactly as they were."""
    before = snapshot(*watch)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse exits by itself
        code = exc.code
    stderr = capsys.readouterr().err
    line = check_refusal(code, stderr, culprits)
    assert snapshot(*watch) == before, "a refused command changed files it was not asked to write"
    return line


def run_dusk(argv: list[str], cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m dusk ARGV` in a child process (for exit paths only a real process shows: signals, pipes)."""
    return subprocess.run(
        [sys.executable, "-m", "dusk", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
