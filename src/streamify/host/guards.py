"""What keeps ``streamify process`` from losing a user's audio: the output that is the input, the partial
files of killed runs, and samples that are not numbers (NaN, infinities).

Partial files are named ``.NAME.PID.partial`` (``NAME`` the output's name, ``PID`` the writing process);
:func:`remove_stale_partials` removes those of processes that no longer run, and only those.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import List, Optional, Union

import numpy as np

from streamify.host.models import HostError

#: ``.NAME.PID.partial``: the temporary name an output is written under before it is renamed
PARTIAL = re.compile(r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)\.partial$")

#: the option of ``streamify process`` that allows an output that is the input
OVERWRITE = "--overwrite-input"

#: what ``--nan`` may ask for with samples that are not finite
NON_FINITE_CHOICES = ("refuse", "zero")


def partial_path(path: Path, pid: Optional[int] = None) -> Path:
    """The temporary file ``path`` is written to before the rename: ``.NAME.PID.partial`` in its folder."""
    return path.with_name(f".{path.name}.{os.getpid() if pid is None else pid}.partial")


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user counts: it may be writing)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(folder: Union[str, Path]) -> List[Path]:
    """Remove the partial files in ``folder`` left by processes that no longer run (killed while writing).

    Only names of our own pattern (:data:`PARTIAL`), only regular files, only when their process is gone;
    a file that cannot be removed is left. Returns the paths removed.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        found = PARTIAL.match(entry.name)
        if found is None or not entry.is_file(follow_symlinks=False) or process_alive(int(found["pid"])):
            continue
        try:
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


def same_file(source: Union[str, Path], destination: Union[str, Path]) -> bool:
    """Whether ``destination`` is ``source`` itself: the same path, a symbolic link to it, or a hard link."""
    try:
        return os.path.samefile(source, destination)
    except OSError:  # the destination does not exist (yet): it cannot be the input
        return False


def check_not_input(
    source: Union[str, Path], destination: Union[str, Path], overwrite_input: bool, option: Optional[str] = OVERWRITE
) -> Path:
    """Refuse (:class:`HostError`) to write over the input unless ``overwrite_input``; the path to write.

    ``option``: the option that allows it, named in the message (``None``: the command has none).
    When the output is the input and overwriting it was asked for, the path written is the input's own
    (links resolved), so that the input is what gets replaced, atomically, at the end.
    """
    destination = Path(destination)
    if not same_file(source, destination):
        return destination
    if not overwrite_input:
        link = "" if Path(source).absolute() == destination.absolute() else " (through a link)"
        allow = f", or pass {option} to replace it once the run succeeded" if option else ""
        raise HostError(
            f"streamify: the output {destination} is the input {source}{link}: writing it would replace your "
            f"input; give another output file{allow}"
        )
    return Path(os.path.realpath(destination))


def non_finite(audio: np.ndarray, sample_rate: int, where: str, action: str = "refuse") -> Optional[str]:
    """Deal with NaN and infinite samples of ``audio`` ``[channels, time]`` (in place) as ``action`` says.

    ``"refuse"``: :class:`HostError` saying how many there are and where the first one is (seconds,
    channel). ``"zero"``: they become 0.0 (silence); returns a note saying so. ``None`` when all are finite.
    """
    if action not in NON_FINITE_CHOICES:
        raise HostError(f"streamify: --nan {action!r} is not one of {', '.join(NON_FINITE_CHOICES)}")
    bad = ~np.isfinite(audio)
    count = int(np.count_nonzero(bad))
    if not count:
        return None
    first = int(np.argmax(bad.any(axis=0)))
    channel = int(np.argmax(bad[:, first])) + 1
    nans = int(np.count_nonzero(np.isnan(audio)))
    kinds = " and ".join(k for k, n in (("NaN", nans), ("infinite", count - nans)) if n)
    said = (
        f"{where} holds {count} {kinds} sample{'s' if count != 1 else ''} (of {audio.size}), the first at "
        f"{first / sample_rate:.3f} s (sample {first}, channel {channel})"
    )
    if action == "refuse":
        raise HostError(
            f"streamify: {said}; a model turns them into more of them: repair the file, or pass --nan zero "
            "to replace them with silence"
        )
    audio[bad] = 0.0
    return f"{said}: replaced with 0 (--nan zero)"
