"""Print the files of a package over a line limit and the functions whose body is over another.

    python tools/size_check.py                     # src/streamify: files over 600 lines, bodies over 60
    python tools/size_check.py --files 600 --body 60 src/streamify/data src/streamify/layers

A function's body runs from its first statement (the docstring, if any) to its last line, nested
functions included; a nested function is also reported on its own. Exit status 1 when anything is
over a limit, 0 otherwise (the project's handbook: no file over 600 lines, no body over 60).
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Iterator, List, Tuple

ROOT = Path(__file__).resolve().parents[1]


def python_files(paths: List[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(path.rglob("*.py"))
        else:
            yield path


def long_bodies(source: str, limit: int) -> Iterator[Tuple[int, str, int]]:
    """``(line, qualified name, body lines)`` of each function whose body is over ``limit`` lines."""

    def visit(node: ast.AST, prefix: str) -> Iterator[Tuple[int, str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                lines = child.end_lineno - child.body[0].lineno + 1
                if lines > limit:
                    yield child.lineno, name, lines
                yield from visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, prefix + child.name + ".")
            else:
                yield from visit(child, prefix)

    yield from visit(ast.parse(source), "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[ROOT / "src" / "streamify"])
    parser.add_argument("--files", type=int, default=600, help="most lines in a file")
    parser.add_argument("--body", type=int, default=60, help="most lines in a function body")
    args = parser.parse_args()
    offenders = 0
    for path in python_files(args.paths):
        source = path.read_text(encoding="utf-8")
        shown = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
        lines = len(source.splitlines())
        if lines > args.files:
            print(f"{shown}: {lines} lines (limit {args.files})")
            offenders += 1
        for line, name, body in long_bodies(source, args.body):
            print(f"{shown}:{line}: {name}: body of {body} lines (limit {args.body})")
            offenders += 1
    print(f"{offenders} over the limits" if offenders else "all within the limits")
    return 1 if offenders else 0


if __name__ == "__main__":
    sys.exit(main())
