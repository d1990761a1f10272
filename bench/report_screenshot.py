"""Render a report's HTML in headless Chromium and save a PNG screenshot, to look at what users will see.

Needs Debian's chromium (`apt-get install -y chromium`). The page is self-contained, so Chromium runs with every
network feature off and a fresh profile.

    .venv/bin/python bench/report_screenshot.py runs/solar-mini/report/report.html --out /tmp/report.png
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    sys.exit("chromium not found: apt-get update && apt-get install -y chromium")


def screenshot(page: Path, out: Path, width: int = 1400, height: int = 1800) -> Path:
    """Screenshot of `page` (a local HTML file) at width x height pixels."""
    with tempfile.TemporaryDirectory(prefix="dusk-chromium-") as profile:
        command = [chromium(), *FLAGS, f"--user-data-dir={profile}", f"--screenshot={out.resolve()}",
                   f"--window-size={width},{height}", page.resolve().as_uri()]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True, timeout=120)
    if not out.is_file():
        sys.exit(f"chromium wrote no screenshot to {out}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, help="report.html written by `dusk report` or `dusk run`")
    parser.add_argument("--out", type=Path, default=Path("report.png"), help="PNG to write (default report.png)")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1800)
    args = parser.parse_args()
    print(screenshot(args.html, args.out, args.width, args.height))


if __name__ == "__main__":
    main()
