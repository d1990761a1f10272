"""Run one recipe stage as N child processes: `torchrun --standalone --nproc_per_node N -m dusk.launch_child`, each
rank running the stage's own `run(cfg)` on the config the runner prepared. Rank 0's output is streamed to the
console as it comes; every rank's output stays in the stage's work directory:

    RUN_DIR/work/<stage>/launch/config.json     the stage kind and its prepared config
    RUN_DIR/work/<stage>/launch/rank-<R>.log    what rank R printed and logged
    RUN_DIR/work/<stage>/launch/rank-<R>.error  written by a rank that failed: what went wrong, in one line
    RUN_DIR/work/<stage>/launch/torchrun.log    the launcher's own output

A rank that fails or is killed fails the stage: `LaunchFailed` (exit code 1) names the rank and the cause and shows
its last lines; a rank refused by a DuskError (bad input only found on the way) is a DuskError again (exit code 2).

    dusk run recipes/tiny.yaml --processes 2
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from dusk.atomic import atomic_output_file
from dusk.errors import DuskError
from dusk.launch import Launch

TAIL_LINES = 8  # a failed rank's last lines shown in the error message
POLL_S = 0.2


class LaunchFailed(ChildProcessError):
    """A rank of a launched stage failed or was killed (a system failure, not bad input: the CLI exits 1)."""


def launch_dir(work: Path) -> Path:
    return work / "launch"


def run_processes(kind: str, cfg: Any, launch: Launch, work: Path, where: str, echo: IO[str] | None) -> None:
    """Run `kind`'s stage function on `cfg` in `launch.processes` processes; return when every rank succeeded."""
    folder = launch_dir(work)
    if folder.exists():
        shutil.rmtree(folder)  # an earlier attempt's logs and error files would be read as this attempt's
    folder.mkdir(parents=True)
    config = folder / "config.json"
    with atomic_output_file(config) as tmp:
        tmp.write_text(json.dumps({"kind": kind, "config": _dump(cfg)}, indent=1))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={launch.processes}",
               "-m", "dusk.launch_child", str(config)]  # fmt: skip
    with open(folder / "torchrun.log", "wb") as output:
        code = _wait(_start(command, _child_env(launch), output), folder / "rank-0.log", echo)
    if code != 0:
        raise _failure(folder, launch.processes, code, where)


def _dump(cfg: Any) -> dict:
    """The config as JSON values; of a pydantic config only the fields that were set, so that the ranks' configs
    are built from the same given fields (a validator may look at which were given, as TrainConfig's LoRA warning)."""
    from pydantic import BaseModel, TypeAdapter

    if isinstance(cfg, BaseModel):
        return cfg.model_dump(mode="json", exclude_unset=True)
    return TypeAdapter(type(cfg)).dump_python(cfg, mode="json")


def _child_env(launch: Launch) -> dict[str, str]:
    """The ranks' environment: CPU ranks see no GPU; the CPU's threads are shared out among the ranks."""
    env = dict(os.environ)
    if launch.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    if "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // launch.processes))
    return env


def _start(command: list[str], env: dict[str, str], output: IO[bytes]) -> subprocess.Popen:
    """torchrun in a session of its own (the runner forwards Ctrl-C to it), told to stop if the runner dies."""
    return subprocess.Popen(
        command, env=env, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, preexec_fn=stop_with_parent,
    )  # fmt: skip


def stop_with_parent() -> None:
    """Linux: SIGTERM to this process when its parent dies, even by kill -9 (torchrun, told so, stops its ranks;
    a rank, told so, stops when torchrun is gone)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _wait(proc: subprocess.Popen, rank0_log: Path, echo: IO[str] | None) -> int:
    """Wait for torchrun, copying rank 0's new output to `echo`; on Ctrl-C stop every rank, then re-raise."""
    shown = 0
    try:
        while proc.poll() is None:
            shown = _echo_new(rank0_log, shown, echo)
            time.sleep(POLL_S)
        _echo_new(rank0_log, shown, echo)
        return proc.returncode
    except BaseException:
        _stop(proc)
        raise


def _echo_new(path: Path, shown: int, echo: IO[str] | None) -> int:
    if echo is None or not path.is_file():
        return shown
    with open(path, "rb") as file:
        file.seek(shown)
        data = file.read()
    if data:
        echo.write(data.decode("utf-8", errors="replace"))
        echo.flush()
    return shown + len(data)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to torchrun and its ranks (their own process group), SIGKILL if they are still there after 30 s."""
    for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


# failures ---------------------------------------------------------------------------------------------------------
def _failure(folder: Path, processes: int, code: int, where: str) -> Exception:
    """The first failed rank as one message: a rank's own DuskError stays a DuskError; anything else (an exception,
    a signal) is LaunchFailed with the rank's last lines and where the logs are."""
    errors = sorted(folder.glob("rank-*.error"), key=lambda path: int(path.stem.split("-")[1]))
    if errors:
        rank = int(errors[0].stem.split("-")[1])
        report = json.loads(errors[0].read_text())
        if report.get("input"):
            return DuskError(f"{where}: rank {rank} of {processes}: {report['message']}")
        cause = report["message"]
    else:
        rank, cause = _root_cause(folder / "torchrun.log", code)
    log = folder / f"rank-{rank}.log" if rank is not None else folder / "torchrun.log"
    who = f"rank {rank} of {processes}" if rank is not None else f"torchrun ({processes} processes)"
    tail = "".join(f"\n    {line}" for line in last_lines(log, TAIL_LINES))
    return LaunchFailed(f"{where}: {who} failed: {cause}; its last lines ({log}):{tail or ' (none)'}")


def _root_cause(torchrun_log: Path, code: int) -> tuple[int | None, str]:
    """The failed rank and its exit as torchrun's summary names them (`rank : 1`, `exitcode : -9`)."""
    text = torchrun_log.read_text(errors="replace") if torchrun_log.is_file() else ""
    text = text.split("Root Cause", 1)[-1]
    rank = re.search(r"^\s*rank\s*:\s*(\d+)", text, re.MULTILINE)
    exit_code = re.search(r"^\s*exitcode\s*:\s*(-?\d+)", text, re.MULTILINE)
    status = int(exit_code.group(1)) if exit_code else code
    return (int(rank.group(1)) if rank else None), _exit_text(status)


def _exit_text(status: int) -> str:
    if status < 0:
        try:
            return f"killed by signal {-status} ({signal.Signals(-status).name})"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit code {status}"


def last_lines(path: Path, count: int) -> list[str]:
    """A log's last `count` non-empty lines, each as it last showed on a terminal (progress bars redraw after \\r)."""
    if not path.is_file():
        return []
    lines = [line.rsplit("\r", 1)[-1].rstrip() for line in path.read_text(errors="replace").split("\n")]
    return [line for line in lines if line.strip()][-count:]
