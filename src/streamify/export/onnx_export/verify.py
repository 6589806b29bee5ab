"""Verification at export: ONNX Runtime must reproduce the PyTorch stream, else the export raises."""

from __future__ import annotations

import copy
from typing import Any, Dict

import torch

from streamify.export.methods import ConvertedMethod
from streamify.export.onnx_export.runtime import OnnxStream
from streamify.layers.base import StreamingError
from streamify.runtime.model import StreamingModel

#: max error of ONNX Runtime against the PyTorch stream accepted at export (relative to the peak)
EXPORT_REL_TOL = 1e-4


class LengthMismatch(Exception):
    """The graph is right at the traced buffer length only (raised by :func:`verify` for other lengths)."""


def verify(
    data: bytes,
    info: Dict[str, Any],
    stream: StreamingModel,
    converted: ConvertedMethod,
    frames: int,
    dynamic_length: bool,
) -> None:
    """ONNX Runtime against the PyTorch stream, from a fresh stream, batch 2, many buffers."""
    runner = OnnxStream(data)
    multiple = int(stream.buffer_multiple)
    sizes = [frames] * 6
    if dynamic_length:
        sizes += [multiple, 3 * multiple, 2 * frames, multiple, 5 * multiple, frames]
    from streamify.export.nn_contract import contract_signal

    x = contract_signal(converted, sum(sizes), 2, seed=1)
    reference = copy.deepcopy(stream)
    reference.reset()
    fixed_part = 6
    start = 0
    with torch.no_grad():
        expected = []
        for size in sizes:
            expected.append(reference(x[..., start : start + size].contiguous()))
            start += size
        scale = max(float(torch.cat(expected, -1).abs().max()), 1e-6)
        start = 0
        for index, size in enumerate(sizes):
            chunk = x[..., start : start + size].contiguous()
            start += size
            try:
                got = runner(chunk)
            except Exception as error:
                if index >= fixed_part:
                    raise LengthMismatch() from error
                raise StreamingError(
                    f"streamify: export_onnx: ONNX Runtime fails on the exported step of {info['method']!r}: {error}"
                ) from error
            error = float((got - expected[index]).abs().max()) / scale
            if error > EXPORT_REL_TOL:
                if index >= fixed_part:
                    raise LengthMismatch()
                raise StreamingError(
                    f"streamify: export_onnx: ONNX Runtime differs from the PyTorch stream of {info['method']!r} at "
                    f"buffer {index} (relative error {error:.3g} > {EXPORT_REL_TOL:g}); please report this model"
                )
