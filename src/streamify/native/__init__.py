"""Matrix products compiled for this machine: a conv over few frames, each weight read once per call.

:func:`load` builds ``products.cpp`` once (a C++ compiler is needed; about 10 s) and registers
``torch.ops.streamify.rows_by_weight``; :func:`streamify.tune` then offers it to every conv as
the kernel :attr:`~streamify.layers.conv_kernels.ConvKernel.NATIVE` and keeps it where it is faster. Models
using it stream in Python and in TorchScript within a process that loaded it; files for other
hosts (nn~, ONNX) keep PyTorch's products (:func:`make_portable`).
"""

from streamify.native.build import cache_dir, kernel_threads, load, unavailable_reason
from streamify.native.kernels import (
    NativeMatmul,
    can_run_native,
    kernel_layers,
    make_portable,
    use_native,
    uses_native,
)


def available() -> bool:
    """Whether the native products are (or can be built and) loaded in this process."""
    return load()


__all__ = [
    "NativeMatmul",
    "available",
    "cache_dir",
    "can_run_native",
    "kernel_threads",
    "load",
    "make_portable",
    "kernel_layers",
    "unavailable_reason",
    "use_native",
    "uses_native",
]
