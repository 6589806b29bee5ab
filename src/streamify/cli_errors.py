"""How the command line reports a refusal: one line on stderr, exit status 2, no traceback.

Commands raise :class:`~streamify.layers.base.StreamingError` (what, where, what to do) and
report it with :func:`fail`; :func:`run_guarded` (the ``streamify`` entry point) turns anything
else that escapes a command into the same one line, the traceback shown only with
``STREAMIFY_TRACEBACK=1``.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from typing import Callable, NoReturn, Optional

import typer

#: exit status of a refused command (Click's own usage errors use it too)
EXIT_REFUSED = 2

#: terminal control sequences (colours, bold) that other libraries put in their messages
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def one_line(text: str, limit: int = 600) -> str:
    """``text`` on one line (its lines joined, terminal escape codes removed), at most ``limit`` characters."""
    joined = " ".join(part.strip() for part in _ANSI.sub("", str(text)).splitlines() if part.strip())
    return joined if len(joined) <= limit else joined[: limit - 3] + "..."


def fail(message: object) -> NoReturn:
    """Print ``error: <message>`` as one line on stderr and exit with status 2."""
    text = one_line(str(message))
    if text.startswith("streamify: "):
        text = text[len("streamify: ") :]
    typer.echo(f"error: {text}", err=True)
    raise typer.Exit(code=EXIT_REFUSED)


def where(error: BaseException, in_file: Optional[str] = None) -> str:
    """``file, line N`` of the innermost frame that raised ``error``, or of the innermost one in
    ``in_file`` (the user's own code) where it has one ("" when unknown)."""
    frames = traceback.extract_tb(error.__traceback__)
    if in_file is not None:
        own = [frame for frame in frames if os.path.abspath(frame.filename) == os.path.abspath(in_file)]
        frames = own or frames
    if not frames:
        return ""
    frame = frames[-1]
    return f"{frame.filename}, line {frame.lineno}"


def command_name(argv: Optional[list] = None) -> Optional[str]:
    """The streamify command of a command line (its first word that is not an option), or None."""
    words = [word for word in (sys.argv[1:] if argv is None else argv) if not word.startswith("-")]
    return words[0] if words else None


def run_guarded(app: Callable[[], object]) -> None:
    """Run the Typer ``app``; an exception it lets escape ends as one line and status 2."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        sys.exit(130)
    except Exception as error:
        if os.environ.get("STREAMIFY_TRACEBACK", "").strip() not in ("", "0"):
            raise
        from streamify.extras import missing_message
        from streamify.layers.base import StreamingError

        missing = missing_message(error.name, command_name()) if isinstance(error, ModuleNotFoundError) else None
        if isinstance(error, StreamingError):
            message = str(error)
        elif missing is not None:
            message = missing
        else:
            message = (
                f"unexpected {type(error).__name__}: {one_line(str(error), 400)} ({where(error)}); "
                "this is likely a bug of streamify: run again with STREAMIFY_TRACEBACK=1 for the traceback and report it"
            )
        try:
            fail(message)
        except typer.Exit as exit_:
            sys.exit(exit_.exit_code)
