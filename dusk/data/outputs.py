"""Checks on the files the data commands write (`--out`, `--report`), made before any work starts.

A data command never replaces an existing file unless `--force` is given, never writes onto a directory, and refuses
an output whose folder cannot be created or written. The recipe runner writes into a fresh temporary directory, so it
never needs `--force`.

    python -c "from pathlib import Path; from dusk.data.outputs import check_output_file as c; c(Path('x.jsonl'))"
"""

from pathlib import Path

from dusk.atomic import check_writable_parent
from dusk.errors import DuskError


def check_output_file(out: Path, force: bool = False, flag: str = "--out") -> None:
    """Refuse `out` when it is a directory, exists without `force`, or its folder is not writable."""
    out = Path(out)
    if out.is_dir():
        raise DuskError(f"{flag} {out} is a directory; expected a file path such as {out / 'data.jsonl'}")
    if out.exists() and not force:
        raise DuskError(f"{flag} {out} already exists; pass --force to replace it")
    check_writable_parent(out)


def check_distinct(paths: dict[str, Path | None]) -> None:
    """Refuse two outputs (flag -> path) that name the same file."""
    seen: dict[Path, str] = {}
    for flag, path in paths.items():
        if path is None:
            continue
        key = Path(path).absolute()
        if key in seen:
            raise DuskError(f"{flag} and {seen[key]} both name {path}; give two different files")
        seen[key] = flag
