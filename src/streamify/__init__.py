"""streamify: run trained convolutional audio networks in real time, exactly.

Streaming models process audio buffer by buffer and return what the offline model
returns, delayed by a fixed, reported number of frames.

* :func:`convert` makes an unmodified PyTorch model stream (verified before it returns);
  :func:`register` teaches it a layer or an op of your own;
* :mod:`streamify.layers` holds the streaming layers for hand-built models;
* :func:`inspect` reports delays, rates and caches;
* :mod:`streamify.state` resets, snapshots and restores streams, and steps them with explicit state;
* :func:`tune` picks, by timing, the fastest kernel of each conv for a host's buffer sizes;
* :func:`export_nn_tilde`, :func:`export_onnx` and :class:`OnnxStream` serve real-time hosts.
"""

from streamify._version import __version__
from streamify.convert import StreamingModel, convert
from streamify.convert.rules import register
from streamify.export import export_nn_tilde
from streamify.layer_report import inspect
from streamify.layers import StreamingError, StreamingModule
from streamify.state import get_state, initial_state, reset, set_state, set_streaming, step
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
    # ONNX support needs the optional onnx and onnxruntime packages: imported when first used
    if name in ("export_onnx", "OnnxStream"):
        import streamify.export

        return getattr(streamify.export, name)
    raise AttributeError(f"module 'streamify' has no attribute {name!r}")
