"""Run the streaming benchmarks: ``python benchmarks/run.py [--quick | --full] [--out DIR] [--doc docs/benchmarks.md]``.

The same command as ``streamify bench`` (see ``streamify.bench.commands``); ``--help`` lists the options.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

try:
    from streamify.bench.commands import register
except ImportError:  # running from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from streamify.bench.commands import register

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
register(app)

if __name__ == "__main__":
    app()
