"""Reading files written by ``torch.save`` (weights, checkpoints) safely, and saying why one cannot be read.

Files are loaded with ``weights_only=True``: tensors and plain containers only, never arbitrary
Python objects (unpickling those could run any code). When that fails, :func:`unreadable` names
the true cause in words a user can act on (an empty or truncated file, a file holding Python
objects, a plain ``pickle`` file, another format), without passing on PyTorch's own advice to
load with ``weights_only=False``, and without its terminal escape codes.
"""

from __future__ import annotations

import re
import warnings
import zipfile
from pathlib import Path
from typing import Optional, Union

import torch

from streamify.cli_errors import one_line

#: the first bytes of a pickle (protocol 2 and later): torch.save's legacy format, or pickle.dump
_PICKLE_MAGIC = b"\x80"


def archive_problem(path: Union[str, Path]) -> Optional[str]:
    """A cheap check of a ``torch.save`` file's container, before loading it: ``"is empty (0 bytes)"``,
    ``"is truncated (...)"``, or None when nothing is wrong with it (its content is not read)."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return "is empty (0 bytes): whatever wrote it stopped before writing anything"
    with path.open("rb") as handle:
        head = handle.read(4)
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path):
                pass
        except zipfile.BadZipFile:
            return (
                f"is truncated: a torch.save archive without its end ({size} bytes); whatever wrote it stopped "
                "while saving (killed, disk full)"
            )
    return None


def unreadable(path: Union[str, Path], error: BaseException) -> str:
    """Why ``torch.load(path, weights_only=True)`` raised ``error``: a clause that follows the file's name."""
    path = Path(path)
    problem = archive_problem(path) if path.is_file() else "does not exist"
    if problem is not None:
        return problem
    text = str(error)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return (
            f"holds Python objects besides tensors ({found.group(1)}), and streamify loads files with "
            "weights_only=True: unpickling objects could run any code"
        )
    with path.open("rb") as handle:
        head = handle.read(2)
    if head.startswith(_PICKLE_MAGIC) and isinstance(error, __import__("pickle").UnpicklingError):
        return (
            "is a Python pickle (pickle.dump), not a file written by torch.save; streamify loads files with "
            "weights_only=True and does not unpickle objects (it could run any code)"
        )
    if head.startswith(b"PK"):
        return f"is a zip archive that torch.load cannot read ({type(error).__name__}: {_first_line(text)})"
    return f"is not a file written by torch.save ({type(error).__name__}: {_first_line(text)})"


def _first_line(text: str) -> str:
    """The first sentence of an error message, on one line, short."""
    line = one_line(text, 160)
    return line.split(". ")[0] if ". " in line else line


def load_tensors(path: Union[str, Path]) -> object:
    """``torch.load(path, map_location="cpu", weights_only=True)``, without PyTorch's warnings about pickle
    protocols (the caller reports what went wrong, with :func:`unreadable`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*pickle protocol.*", category=UserWarning)
        return torch.load(str(path), map_location="cpu", weights_only=True)
