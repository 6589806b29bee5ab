"""streamify: run trained convolutional audio networks in real time, exactly.

Streaming models process audio buffer by buffer and return what the offline model
returns, delayed by a fixed, reported number of frames.

* :func:`convert` makes an unmodified PyTorch model stream (verified before it returns);
  :func:`register` teaches it a layer or an op of your own;
* :mod:`streamify.layers` holds the streaming layers for hand-built models;
* :func:`inspect` reports delays, rates and caches;
* :mod:`streamify.runtime` runs streaming models without the converter: :class:`StreamingModel`, the state
  (reset, snapshot and restore, explicit step) and buffers of any length;
* :func:`tune` picks, by timing, the fastest kernel of each conv for a host's buffer sizes;
* :func:`export_nn_tilde`, :func:`export_onnx` and :class:`OnnxStream` serve real-time hosts.
"""

import sys
import types

from streamify._version import __version__
from streamify.export import export_nn_tilde
from streamify.layer_report import inspect
from streamify.layers import StreamingError, StreamingModule
from streamify.runtime.model import StreamingModel
from streamify.runtime.state import get_state, initial_state, reset, set_state, set_streaming, step
from streamify.tuning import tune

__all__ = [
    "OnnxStream",
    "StreamingError",
    "StreamingModel",
    "StreamingModule",
    "__version__",
    "convert",
    "export_nn_tilde",
    "export_onnx",
    "get_state",
    "initial_state",
    "inspect",
    "register",
    "reset",
    "set_state",
    "set_streaming",
    "step",
    "tune",
]


def __getattr__(name: str):
    # the converter is imported when first used: the runtime (streamify.runtime, layers, export, host)
    # runs without it; ONNX support needs the optional onnx and onnxruntime packages
    if name in ("convert", "register"):
        from streamify.convert import convert
        from streamify.convert.rules import register

        return {"convert": convert, "register": register}[name]
    if name in ("export_onnx", "OnnxStream"):
        import streamify.export

        return getattr(streamify.export, name)
    raise AttributeError(f"module 'streamify' has no attribute {name!r}")


class _Package(types.ModuleType):
    """streamify's module: ``streamify.convert`` stays the function :func:`convert` when its package is imported.

    Python sets a subpackage as an attribute of its parent when it is first imported
    (``from streamify.convert.verify import ...``); the function of the same name keeps the public name.
    """

    def __setattr__(self, name: str, value) -> None:
        if name == "convert" and isinstance(value, types.ModuleType):
            value = value.convert
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
