"""Writing exported files whole or not at all.

A host that loads a half-written model file fails (or worse, a good file already at that
path is lost). :func:`write_atomically` writes the bytes to a temporary file in the same
folder, flushes them to disk and renames it over the target (``os.replace``, atomic on
POSIX and Windows within one file system). On any failure (disk full, a size limit,
permissions) the temporary file is removed, the old file is left as it was, and a
:class:`StreamingError` says what happened.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Union

from streamify.layers.base import StreamingError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path: Union[str, Path], data: bytes, where: str = "export") -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Returns:
        The path written (its parent folders are created).

    Raises:
        StreamingError: the write failed; ``path`` holds what it held before (or does not exist),
            and no temporary file remains.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StreamingError(f"streamify: {where}: cannot create the folder of {path}: {error}") from error
    temporary = None
    try:
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(temporary, path)
        temporary = None
    except OSError as error:
        raise StreamingError(
            f"streamify: {where}: writing {path} failed ({error.strerror or error}); nothing was written there"
            f"{' (the file already there is unchanged)' if path.exists() else ''}: free disk space or choose "
            "another folder"
        ) from error
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
    return path
