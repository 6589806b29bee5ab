"""Run the streaming benchmarks: ``python benchmarks/run.py [--quick | --full] [--out DIR] [--doc docs/benchmarks.md]``.

The harness is the package ``benchmarks/harness`` (not shipped with streamify); ``--help`` lists the options.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import streamify  # noqa: F401
except ImportError:  # running from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from harness.commands import app  # noqa: E402  (benchmarks/ is on the path: this script's folder)

if __name__ == "__main__":
    app()
