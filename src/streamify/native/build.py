"""Compiling and loading the native products (``products.cpp``) for this machine.

The extension is built once per source, flags, torch version and CPU (``-O3 -march=native``,
and ``-fopenmp`` where PyTorch's threads are GNU OpenMP's, so that the kernel's ``at::parallel_for``
splits its work over ``torch.get_num_threads()`` threads; about 10 s with a C++ compiler) into
``$STREAMIFY_CACHE`` (default ``~/.cache/streamify``) and loaded into the process, which
registers the op ``torch.ops.streamify.rows_by_weight``. ``STREAMIFY_NATIVE=0`` turns it off.
Without a compiler, streamify keeps its portable products.

Processes building the same extension take turns on a lock file (``build.lock`` in the build folder,
held through :mod:`filelock`; the operating system releases it when its holder dies, so the build
of a killed process is taken over, and torch's own ``lock`` file that it left is removed). A process
that waits longer than ``$STREAMIFY_NATIVE_LOCK_TIMEOUT`` seconds (default :data:`LOCK_TIMEOUT_S`)
for another's build gives up with a warning and keeps the portable products, as without a compiler.
"""

from __future__ import annotations

import hashlib
import os
import platform
import threading
import warnings
from pathlib import Path
from typing import List, Optional, Sequence

import torch
from filelock import FileLock, Timeout

SOURCE = Path(__file__).with_name("products.cpp")

#: always passed to the compiler
BASE_FLAGS = ["-O3", "-march=native"]
#: compiler and linker flags that make ``at::parallel_for`` run on PyTorch's OpenMP threads (without
#: them its ``#pragma omp`` is ignored and the kernel runs on one thread whatever the thread count)
OPENMP_FLAGS = ["-fopenmp"]

#: seconds :func:`load` waits for another process's build of the same extension before giving up
#: (``$STREAMIFY_NATIVE_LOCK_TIMEOUT`` overrides it); a build takes about 10 s, a few minutes on a busy machine
LOCK_TIMEOUT_S = 300.0
#: the lock file processes building into the same folder take turns on (torch's own is ``lock``)
LOCK_NAME = "build.lock"

_loaded: Optional[bool] = None
_reason: str = ""
_thread_lock = threading.Lock()


class _LockTimeout(Exception):
    """Another process held the build lock longer than the timeout."""


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

    Never raises: on failure (no compiler, ``STREAMIFY_NATIVE=0``, an unsupported platform, another
    process's build holding the lock past :func:`lock_timeout`, which also warns) it returns False
    and :func:`unavailable_reason` says why.
    """
    with _thread_lock:
        return _load()


def _load() -> bool:
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
        try:
            error = _build(flags)
        except _LockTimeout as waited:
            _loaded, _reason = False, str(waited)
            warnings.warn(f"streamify.native: {waited}", RuntimeWarning, stacklevel=3)
            return False
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


def lock_timeout() -> float:
    """Seconds to wait for another process's build: ``$STREAMIFY_NATIVE_LOCK_TIMEOUT``, else :data:`LOCK_TIMEOUT_S`."""
    text = os.environ.get("STREAMIFY_NATIVE_LOCK_TIMEOUT", "").strip()
    try:
        return max(0.0, float(text)) if text else LOCK_TIMEOUT_S
    except ValueError:
        warnings.warn(
            f"streamify.native: STREAMIFY_NATIVE_LOCK_TIMEOUT={text!r} is not a number of seconds; "
            f"using {LOCK_TIMEOUT_S:g}",
            RuntimeWarning,
            stacklevel=3,
        )
        return LOCK_TIMEOUT_S


def _build(flags: List[str]) -> Optional[str]:
    """Compile (or find in the cache) and load the extension with ``flags``; the error, or None.

    Raises :class:`_LockTimeout` when another process holds the build lock past :func:`lock_timeout`.
    """
    try:
        directory = cache_dir(flags)
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"{type(error).__name__}: {error}"
    timeout = lock_timeout()
    lock = FileLock(str(directory / LOCK_NAME), timeout=timeout)
    try:
        with lock:
            # no other build into this folder runs while we hold the lock: a torch ``lock`` file here
            # was left by a build that died (torch's own lock is never released then, and torch would
            # wait for it forever)
            (directory / "lock").unlink(missing_ok=True)
            return _compile_and_load(flags, directory)
    except Timeout:
        raise _LockTimeout(
            f"another process has held the build lock {directory / LOCK_NAME} for over {timeout:g} s "
            "(a build still running, or a process stuck in one); this process keeps the portable products "
            "(exact, slower at small buffers). A new process takes the built kernel once that build is done; "
            "set STREAMIFY_NATIVE_LOCK_TIMEOUT (seconds) to wait longer"
        ) from None
    except OSError as error:  # a lock file that cannot be created (read-only cache folder)
        return f"cannot take the build lock in {directory}: {type(error).__name__}: {error}"


def _compile_and_load(flags: List[str], directory: Path) -> Optional[str]:
    """torch's extension builder (ninja, the C++ compiler) on ``products.cpp``; the error, or None."""
    try:
        from torch.utils.cpp_extension import load as load_extension

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
        reason = f"{type(error).__name__}: {str(error).strip()[-400:]}"
        if "ninja is required" in str(error).lower():
            from streamify.extras import install_line

            reason = f"the native products need the package ninja, which is not installed: {install_line('native')}"
        return reason
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
