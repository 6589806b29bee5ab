"""ONNX export with explicit state, and :class:`OnnxStream`, its runner in ONNX Runtime.

The exported graph is one streaming step as a pure function::

    y, next_state_0, ..., next_state_k = step(x, state_0, ..., state_k)

Every cache, delay line, overlap-add tail, recurrent state and warm-up position of the
streaming model is an input and an output of the graph. Warm-up masking (the frames a
fresh stream emits before the offline signal starts) is computed with tensor ops from
the warm-up positions carried in the state, so that the ONNX model reproduces the
PyTorch stream from the first buffer; the Python counters and shortcuts that the
PyTorch layers use are not baked into the graph. Recurrent layers fed by a delayed
stream skip their warm-up frames per batch item with the ``sequence_lens`` input of
ONNX's LSTM/GRU operators.

How it works: the exporter (TorchScript-based, ``torch.onnx.export(..., dynamo=False)``)
traces :func:`streamify.state.step`, the explicit-state step that eager users can call
too, on a private copy of the streaming model: the layers read their ``explicit_state``
flag and compute masks with tensor ops, leaving state allocation to the caller. The
state layout, its initial values and the model's timing go into the ONNX metadata (key
``"streamify"``, JSON); ``docs/export.md`` describes the protocol.

Modules: :mod:`.export` (tracing, state protocol, metadata), :mod:`.rnn` (ONNX symbolics of
the recurrent layers), :mod:`.verify` (ONNX Runtime against the PyTorch stream at export),
:mod:`.runtime` (:class:`OnnxStream`, reading the metadata).
"""

from streamify.export.onnx_export.export import OPSET, export_onnx
from streamify.export.onnx_export.runtime import METADATA_KEY, OnnxStream, describe_onnx, read_onnx_info
from streamify.export.onnx_export.verify import EXPORT_REL_TOL

__all__ = ["EXPORT_REL_TOL", "METADATA_KEY", "OPSET", "OnnxStream", "describe_onnx", "export_onnx", "read_onnx_info"]
