"""Where a run's result files go (`dusk eval`, `dusk contamination`): the output directory is checked before any
work, a run's files are written together (results.json replaced last), the samples files an earlier run left for
other tasks are removed, and when the directory cannot be written at the end the results are kept in a fresh
temporary directory that the error names.

    check_out_dir(Path("runs/eval/sft"))   # before the model loads
    write_run_files(Path("runs/eval/sft"), {"results.json": "{}", "samples_gsm8k.jsonl": ""}, "eval")
"""

import os
import re
import tempfile
from contextlib import ExitStack
from pathlib import Path

from dusk.atomic import atomic_output_file, check_writable_parent
from dusk.errors import DuskError
from dusk.h6 import H6_TASKS

RESULTS = "results.json"
H6_FAMILIES = frozenset(task.split("_")[0] for task in H6_TASKS)  # arc, hellaswag, mmlu, truthfulqa, ...
SAMPLES_NAME = re.compile(r"samples_(?P<task>[A-Za-z0-9_]+)\.jsonl")


def samples_name(task: str) -> str:
    """The per-task samples file of a run: `samples_<task>.jsonl`."""
    return f"samples_{task}.jsonl"


def check_out_dir(out: Path) -> None:
    """Refuse, before any work, an output that is an existing file or a directory dusk could not write into."""
    out = Path(out)
    if out.is_symlink() and not out.exists():
        raise DuskError(f"--out {out}: a broken symbolic link (to {os.readlink(out)}); expected a directory")
    if out.exists() and not out.is_dir():
        raise DuskError(f"--out {out}: exists and is not a directory (expected a directory for results.json)")
    if not out.exists():
        check_writable_parent(out)
    elif not os.access(out, os.W_OK | os.X_OK):
        raise DuskError(f"--out {out}: directory is not writable")


def is_dusk_task(task: str) -> bool:
    """Whether a samples file's task is one `dusk eval` or `dusk contamination` writes: an H6 task or another of its
    family (arc_easy, mmlu_<subject>). Told from the H6 list alone, so this module needs nothing of eval's."""
    return task in H6_TASKS or task.split("_")[0] in H6_FAMILIES


def stale_samples(out: Path, keep: set[str]) -> list[Path]:
    """The samples files in `out` that dusk wrote for a task (`samples_<task>.jsonl`) and that are not in `keep`."""
    stale = []
    for path in sorted(Path(out).glob("samples_*.jsonl")):
        match = SAMPLES_NAME.fullmatch(path.name)
        if match and is_dusk_task(match["task"]) and path.name not in keep and path.is_file() and not path.is_symlink():
            stale.append(path)
    return stale


def _write_all(out: Path, files: dict[str, str]) -> None:
    """Write every file to a temporary sibling first; rename them only when all are written (results.json last)."""
    out.mkdir(parents=True, exist_ok=True)
    order = sorted(files, key=lambda name: name != RESULTS)  # entered first = replaced last
    with ExitStack() as stack:
        temps = {name: stack.enter_context(atomic_output_file(out / name)) for name in order}
        for name, tmp in temps.items():
            tmp.write_text(files[name], encoding="utf-8")


def _rescue(files: dict[str, str], what: str) -> Path | None:
    """Write the files into a fresh directory under the system temp dir; None when that fails too."""
    try:
        rescue = Path(tempfile.mkdtemp(prefix=f"dusk-{what}-"))
        for name, text in files.items():
            (rescue / name).write_text(text, encoding="utf-8")
    except OSError:
        return None
    return rescue


def write_run_files(out: Path, files: dict[str, str], what: str) -> Path:
    """Write a run's files (name -> text, results.json among them) into `out`, remove samples files of tasks not
    in this run, and return the results.json path. If `out` cannot be written, the files are kept in a new
    directory under the system temp dir and the error (one line) says where."""
    out = Path(out)
    try:
        _write_all(out, files)
    except OSError as exc:
        rescue = _rescue(files, what)
        if rescue is None:
            raise
        reason = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else exc.strerror or str(exc)
        raise OSError(exc.errno, f"cannot write {out} ({reason}); the results are kept in {rescue}") from exc
    for path in stale_samples(out, set(files)):
        path.unlink(missing_ok=True)
    return out / RESULTS
