"""`dusk --help` stays fast: building the parser imports no torch, transformers or other heavy libraries."""

import subprocess
import sys

HEAVY_MODULES = ("torch", "transformers", "datasets", "pyspark", "matplotlib")


def test_building_the_parser_imports_no_heavy_library() -> None:
    # A fresh interpreter: the test session itself has torch loaded already.
    code = (
        "import sys; from dusk.cli import build_parser; build_parser(); "
        f"print(','.join(name for name in {HEAVY_MODULES!r} if name in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
