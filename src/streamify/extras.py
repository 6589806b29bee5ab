"""Optional dependencies: which extra of streamify installs each one, and the message that says so.

streamify's core needs only torch, numpy, Typer, rich and filelock. Each feature that needs more
lives behind an extra (``pyproject.toml``): ``host`` (audio files and live audio), ``train``,
``data``, ``export`` (ONNX) and ``native``. A missing package ends as one line naming the extra to
install, e.g. ``pip install 'streamify[host]'``: :func:`require` where a feature imports one, and
:func:`missing_message` for an import error that escapes a command (``streamify.cli_errors``).
"""

from __future__ import annotations

import importlib
import types
from typing import Dict, Optional

from streamify.layers.base import StreamingError

#: top-level module -> (the package to install, the extra that installs it, or "" when the command decides)
MODULES: Dict[str, tuple] = {
    "soundfile": ("soundfile", ""),
    "soxr": ("soxr", ""),
    "jack": ("JACK-Client", "host"),
    "sounddevice": ("sounddevice", "host"),
    "lightning": ("lightning", "train"),
    "tensorboard": ("tensorboard", "train"),
    "matplotlib": ("matplotlib", "train"),
    "onnx": ("onnx", "export"),
    "onnxruntime": ("onnxruntime", "export"),
    "mido": ("mido", "data"),
    "ninja": ("ninja", "native"),
}

#: the extra of each command, for packages several extras install (soundfile and soxr)
COMMAND_EXTRAS: Dict[str, str] = {
    "process": "host",
    "live": "host",
    "demo": "host",
    "train": "train",
    "data": "data",
    "export": "export",
    "info": "export",
}


def install_line(extra: str) -> str:
    """``pip install 'streamify[extra]'`` (quoted: shells expand brackets)."""
    return f"pip install 'streamify[{extra}]'"


def missing_message(
    module: Optional[str], command: Optional[str] = None, feature: Optional[str] = None
) -> Optional[str]:
    """The one-line message for the optional ``module`` missing (None when it is not an optional dependency).

    ``command``: the streamify command that ran (picks the extra for packages several extras install);
    ``feature``: what needed it, in words (default: the command).
    """
    if not module:
        return None
    top = module.split(".")[0]
    if top not in MODULES:
        return None
    package, extra = MODULES[top]
    extra = extra or COMMAND_EXTRAS.get(command or "", "host")
    who = feature or (f"streamify {command}" if command else "streamify")
    return f"streamify: {who} needs the package {package}, which is not installed: {install_line(extra)}"


def require(module: str, feature: str, extra: Optional[str] = None) -> types.ModuleType:
    """Import ``module``, or raise :class:`StreamingError` naming the extra that installs it.

    ``feature``: what needs it, in words ("reading audio files"); ``extra``: the extra, where the
    module alone does not tell (soundfile and soxr are in several).
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        top = module.split(".")[0]
        if error.name is not None and error.name.split(".")[0] != top:
            raise  # the module is there but one of its own imports is not: not ours to name
        package = MODULES.get(top, (top, ""))[0]
        chosen = extra or MODULES.get(top, (top, ""))[1] or "host"
        raise StreamingError(
            f"streamify: {feature} needs the package {package}, which is not installed: {install_line(chosen)}"
        ) from error
