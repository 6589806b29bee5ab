"""Compiling and loading the native products (``products.cpp``) for this machine.

The extension is built once per source, flags, torch version and CPU (``-O3 -march=native``,
and ``-fopenmp`` where PyTorch's threads are GNU OpenMP's, so that the kernel's ``at::parallel_for``
splits its work over ``torch.get_num_threads()`` threads; about 10 s with a C++ compiler) into
``$STREAMIFY_CACHE`` (default ``~/.cache/streamify``) and loaded into the process, which
registers the op ``torch.ops.streamify.rows_by_weight``. ``STREAMIFY_NATIVE=0`` turns it off.
Without a compiler, streamify keeps its portable products.
"""

from __future__ import annotations

import hashlib
import os
import platform
import warnings
from pathlib import Path
from typing import List, Optional, Sequence

import torch

SOURCE = Path(__file__).with_name("products.cpp")

#: always passed to the compiler
BASE_FLAGS = ["-O3", "-march=native"]
#: compiler and linker flags that make ``at::parallel_for`` run on PyTorch's OpenMP threads (without
#: them its ``#pragma omp`` is ignored and the kernel runs on one thread whatever the thread count)
OPENMP_FLAGS = ["-fopenmp"]

_loaded: Optional[bool] = None
_reason: str = ""


def _uses_openmp() -> bool:
    """Whether PyTorch runs its intra-op threads on GNU OpenMP (``libgomp``, as the Linux wheels do).

    Only then does ``-fopenmp`` give the kernel PyTorch's own thread pool: the extension's
    ``libgomp.so.1`` is the one torch loaded. With another runtime (Intel's, LLVM's) it would load
    a second one, whose threads ignore ``torch.set_num_threads``; the kernel is then built without.
    """
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return False
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return False
    return "libgomp" in maps


def _flag_sets() -> List[List[str]]:
    """Compiler flag sets to try, best first: with OpenMP where PyTorch uses it, then without."""
    if _uses_openmp():
        return [BASE_FLAGS + OPENMP_FLAGS, BASE_FLAGS]
    return [BASE_FLAGS]


def _cpu_key(flags_used: Sequence[str] = ()) -> str:
    """What the compiled code depends on besides its source: flags, torch, Python, and the CPU's features."""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line
                break
    except OSError:
        flags = platform.processor()
    parts = [SOURCE.read_text(), torch.__version__, platform.python_version(), platform.machine(), flags]
    text = "|".join(parts + list(flags_used))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_dir(flags: Optional[Sequence[str]] = None) -> Path:
    """Where builds with compiler ``flags`` (default: the first set :func:`load` tries) are kept:
    ``$STREAMIFY_CACHE/native/<key>``."""
    root = Path(os.environ.get("STREAMIFY_CACHE", Path.home() / ".cache" / "streamify"))
    return root / "native" / _cpu_key(_flag_sets()[0] if flags is None else flags)


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
    failures = []
    for flags in _flag_sets():
        error = _build(flags)
        if error is None:
            break
        failures.append(f"{' '.join(flags)}: {error}")
    else:
        _loaded = False
        _reason = f"could not build {SOURCE.name}: " + "; ".join(failures)
        return False
    _loaded = _op_registered()
    if not _loaded:
        _reason = "the extension loaded but did not register streamify::rows_by_weight"
    else:
        _register_autograd()
    return _loaded


def _build(flags: List[str]) -> Optional[str]:
    """Compile (or find in the cache) and load the extension with ``flags``; the error, or None."""
    try:
        from torch.utils.cpp_extension import load as load_extension

        directory = cache_dir(flags)
        directory.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_extension(
                name="streamify_native",
                sources=[str(SOURCE)],
                extra_cflags=list(flags),
                extra_ldflags=[f for f in flags if f in OPENMP_FLAGS],
                build_directory=str(directory),
                is_python_module=False,
                verbose=False,
            )
    except Exception as error:  # a compiler error, a missing toolchain, a foreign platform
        return f"{type(error).__name__}: {str(error).strip()[-400:]}"
    return None


def _register_autograd() -> None:
    """Gradients of ``rows @ weight.t()``, so that a stream can be trained through (rarely wanted)."""

    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(*inputs)

    def backward(ctx, grad: torch.Tensor):
        rows, weight = ctx.saved_tensors
        return grad @ weight, grad.t() @ rows

    torch.library.register_autograd("streamify::rows_by_weight", backward, setup_context=setup_context)


def kernel_threads() -> int:
    """Threads the native kernel splits one product over at the current ``torch.get_num_threads()``.

    0 when the kernel is unavailable; 1 at any thread count when it was built without OpenMP
    (where PyTorch does not use it, or the compiler refused ``-fopenmp``).
    """
    if not load():
        return 0
    return int(torch.ops.streamify.threads_used(4 * max(torch.get_num_threads(), 1)))


def unavailable_reason() -> str:
    """Why :func:`load` returned False ("" when it did not)."""
    return _reason
