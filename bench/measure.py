"""Run a command in its own process and measure its wall time and peak RSS (for bench/ scripts).

python bench/measure.py -- dusk info smollm2-135m
"""

import os
import subprocess
import sys
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Measurement:
    seconds: float
    peak_rss_mib: float
    returncode: int


def measure(command: list[str], env: dict[str, str] | None = None, quiet: bool = True) -> Measurement:
    """Wall time and peak resident set size of one child process (os.wait4 reports that child's own rusage)."""
    start = time.perf_counter()
    output = subprocess.DEVNULL if quiet else None
    process = subprocess.Popen(command, env=env, stdout=output, stderr=output)
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    return Measurement(seconds, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    result = measure(sys.argv[sys.argv.index("--") + 1 :], quiet=False)
    print(f"{result.seconds:.2f} s, peak RSS {result.peak_rss_mib:.0f} MiB, exit {result.returncode}")
