"""The corpus of published models (tests/convert/corpus) run through the current converter: what it does with each.

    python benchmarks/corpus.py                     # every entry, one line each, then the counts
    python benchmarks/corpus.py --only nnaudio      # entries whose name contains a string
    python benchmarks/corpus.py --json corpus.json  # the outcomes as JSON too

Each entry is built (random weights, float64), converted with ``streamify.convert`` and checked against
its verdict (tests/convert/corpus/corpus_check.py): a model that streams must convert and stream exactly
(float64, irregular buffers); one that cannot must be refused with a message naming the true cause.
Counted: exact / refused for the true reason / refused though streamable / refused with the cause misnamed /
converted though marked refused / crash / silently wrong. Entries whose package is missing are listed apart.
Needs the ``convert`` extra (see .ci/run for the install lines).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT / "tests" / "convert" / "corpus", ROOT / "tests", ROOT / "src"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import torch  # noqa: E402
from corpus_check import OUTCOMES, outcome  # noqa: E402
from corpus_entries import ENTRIES  # noqa: E402
from corpus_imports import PackageMissing  # noqa: E402

NOT_INSTALLED = "not installed"


def run(only: str = "") -> list:
    """Each selected entry's outcome: dicts of name, package, verdict, outcome, seconds and detail."""
    rows = []
    for entry in ENTRIES:
        if only and only not in entry.name:
            continue
        began = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                model = entry.build()
            except PackageMissing as error:
                kind, detail = NOT_INSTALLED, str(error)
            else:
                result = outcome(entry, model)
                kind, detail = result.kind, result.detail
        rows.append(
            {
                "name": entry.name,
                "package": entry.package,
                "verdict": entry.verdict,
                "outcome": kind,
                "seconds": round(time.perf_counter() - began, 2),
                "detail": detail,
            }
        )
        print(f"{entry.name:48s} {kind:32s} {rows[-1]['seconds']:6.2f} s  {_short(detail)}", flush=True)
    return rows


def _short(detail: str, width: int = 110) -> str:
    text = " ".join(detail.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="run only the entries whose name contains this")
    parser.add_argument("--json", type=Path, help="write the outcomes here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = run(args.only)
    counts = Counter(row["outcome"] for row in rows)
    packages = len({row["package"] for row in rows if row["outcome"] != NOT_INSTALLED})
    print(f"\n{len(rows)} configurations of {packages} packages (torch {torch.__version__}):")
    for kind in (*OUTCOMES, NOT_INSTALLED):
        print(f"  {kind:34s} {counts.get(kind, 0)}")
    if args.json is not None:
        args.json.write_text(json.dumps({"counts": dict(counts), "entries": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
