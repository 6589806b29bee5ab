"""Compiling and loading the native products (``products.cpp``) for this machine.

The extension is built once per source, torch version and CPU (``-O3 -march=native``: about
10 s with a C++ compiler) into ``$STREAMIFY_CACHE`` (default ``~/.cache/streamify``) and
loaded into the process, which registers the op ``torch.ops.streamify.rows_by_weight``.
``STREAMIFY_NATIVE=0`` turns it off. Without a compiler, streamify keeps its portable products.
"""

from __future__ import annotations

import hashlib
import os
import platform
import warnings
from pathlib import Path
from typing import Optional

import torch

SOURCE = Path(__file__).with_name("products.cpp")

_loaded: Optional[bool] = None
_reason: str = ""


def _cpu_key() -> str:
    """What the compiled code depends on besides its source: torch, Python, and the CPU's features."""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line
                break
    except OSError:
        flags = platform.processor()
    text = "|".join([SOURCE.read_text(), torch.__version__, platform.python_version(), platform.machine(), flags])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_dir() -> Path:
    """Where builds are kept: ``$STREAMIFY_CACHE/native/<key>``."""
    root = Path(os.environ.get("STREAMIFY_CACHE", Path.home() / ".cache" / "streamify"))
    return root / "native" / _cpu_key()


def _op_registered() -> bool:
    try:
        torch.ops.streamify.rows_by_weight  # noqa: B018 (raises when the op is not registered)
    except (AttributeError, RuntimeError):
        return False
    return True


def load() -> bool:
    """Build (once) and load the native products; True when ``torch.ops.streamify.rows_by_weight`` is there.

    Never raises: on failure (no compiler, ``STREAMIFY_NATIVE=0``, an unsupported platform)
    it returns False and :func:`unavailable_reason` says why.
    """
    global _loaded, _reason
    if _loaded is not None:
        return _loaded
    if os.environ.get("STREAMIFY_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        _loaded, _reason = False, "turned off by STREAMIFY_NATIVE=0"
        return False
    if _op_registered():
        _loaded = True
        return True
    try:
        from torch.utils.cpp_extension import load as load_extension

        directory = cache_dir()
        directory.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_extension(
                name="streamify_native",
                sources=[str(SOURCE)],
                extra_cflags=["-O3", "-march=native"],
                build_directory=str(directory),
                is_python_module=False,
                verbose=False,
            )
    except Exception as error:  # a compiler error, a missing toolchain, a foreign platform
        _loaded = False
        _reason = f"could not build {SOURCE.name}: {type(error).__name__}: {str(error).strip()[-400:]}"
        return False
    _loaded = _op_registered()
    if not _loaded:
        _reason = "the extension loaded but did not register streamify::rows_by_weight"
    else:
        _register_autograd()
    return _loaded


def _register_autograd() -> None:
    """Gradients of ``rows @ weight.t()``, so that a stream can be trained through (rarely wanted)."""

    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(*inputs)

    def backward(ctx, grad: torch.Tensor):
        rows, weight = ctx.saved_tensors
        return grad @ weight, grad.t() @ rows

    torch.library.register_autograd("streamify::rows_by_weight", backward, setup_context=setup_context)


def unavailable_reason() -> str:
    """Why :func:`load` returned False ("" when it did not)."""
    return _reason
