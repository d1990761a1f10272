"""One rank of a launched recipe stage (started by `dusk.launch_run` through torchrun): read the stage kind and its
prepared config, run the kind's `run(cfg)`, and on failure leave `rank-<R>.error` saying what went wrong in one line.

Everything the rank prints goes to `rank-<R>.log` beside the config (rank 0's is what the runner shows).

    torchrun --standalone --nproc_per_node 2 -m dusk.launch_child RUN_DIR/work/sft/launch/config.json
"""

import json
import logging
import os
import sys
import traceback
from pathlib import Path

from dusk.errors import DuskError


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _redirect_output(log: Path) -> None:
    """Point this process's stdout and stderr (the file descriptors: C libraries' output too) at `log`."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)


def _write_error(folder: Path, message: str, is_input: bool) -> None:
    path = folder / f"rank-{_rank()}.error"
    path.write_text(json.dumps({"message": message, "input": is_input}))


def run_stage(config_path: Path) -> None:
    """Validate the prepared config again (it was dumped as JSON) and run the stage kind's function on it."""
    from pydantic import TypeAdapter

    from dusk.stages import get_kind

    spec = json.loads(config_path.read_text())
    kind = get_kind(spec["kind"])
    kind.run(TypeAdapter(kind.schema()).validate_python(spec["config"]))


def main(argv: list[str]) -> int:
    from dusk.launch_run import stop_with_parent

    stop_with_parent()  # torchrun killed outright (not stopped) must not leave this rank running
    config_path = Path(argv[0])
    folder = config_path.parent
    _redirect_output(folder / f"rank-{_rank()}.log")
    print(f"dusk launch: rank {_rank()} of {os.environ.get('WORLD_SIZE', '1')}, pid {os.getpid()}", flush=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run_stage(config_path)
    except DuskError as exc:
        print(f"dusk: error: {exc}", file=sys.stderr)
        _write_error(folder, str(exc), is_input=True)
        return 2
    except KeyboardInterrupt:
        print("dusk: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        traceback.print_exc()
        _write_error(folder, f"{type(exc).__name__}: {exc}".strip().splitlines()[0], is_input=False)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
