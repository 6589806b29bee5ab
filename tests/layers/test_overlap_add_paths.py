"""Both code paths of the transposed conv's overlap-add stream exactly.

:class:`streamify.layers.conv_transpose.OverlapAdd` adds the previous call's tail in place
(eager, no autograd) or out of place (autograd recording, tracing for the ONNX export). Where a
call emits fewer frames than the tail holds (short buffers, a kernel much longer than the
stride), the next tail overlaps the frames the old tail was added to: taken before that addition,
it loses the old tail. Each path is checked with such buffers, and the ONNX export (a trace)
must stay valid at any buffer length instead of falling back to the traced length.
"""

from __future__ import annotations

import pytest
import torch

from helpers import ABS_TOL
from streamify.exactness import compare_streamed
from streamify.layers import ConvTranspose1d, Sequential
from streamify.runtime.state import reset

#: (kernel, stride, padding): tails of 9, 5 and 14 frames against calls of 1 to 3 input frames
SHAPES = [(11, 2, 3), (8, 3, 1), (16, 2, 0)]
SIZES = [1, 1, 2, 1, 3, 1, 1, 2, 4, 1, 1, 1, 2, 3, 1, 1, 2, 2, 1, 1]


def _stream(model: torch.nn.Module, x: torch.Tensor, grad: bool) -> torch.Tensor:
    outputs, start = [], 0
    with torch.set_grad_enabled(grad):
        for size in SIZES:
            chunk = x[..., start : start + size]
            if grad:
                chunk = chunk.clone().requires_grad_(True)
            outputs.append(model(chunk).detach())
            start += size
    return torch.cat(outputs, -1)


@pytest.mark.parametrize("grad", [False, True], ids=["in_place", "autograd"])
@pytest.mark.parametrize("kernel, stride, padding", SHAPES)
def test_short_buffers_stream_exactly_on_both_paths(kernel: int, stride: int, padding: int, grad: bool) -> None:
    torch.manual_seed(0)
    model = ConvTranspose1d(3, 2, kernel, stride, padding).double()
    assert model.tail_len > stride * max(SIZES[:2])  # the next tail overlaps where the old one is added
    x = torch.randn(2, 3, sum(SIZES), dtype=torch.float64)
    reset(model)
    streamed = _stream(model, x, grad)
    reset(model)
    with torch.no_grad():
        offline = model.offline(x)
    comparison = compare_streamed(streamed, offline, model.delay)
    assert comparison.compared_frames >= 30
    assert comparison.max_abs_error <= ABS_TOL, f"max abs error {comparison.max_abs_error:.3g}"


def test_the_onnx_export_of_a_long_kernel_keeps_any_buffer_length(tmp_path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from streamify.export import OnnxStream, export_onnx

    torch.manual_seed(1)
    model = Sequential(ConvTranspose1d(2, 2, 11, 2, 3)).eval()
    info = export_onnx(model, tmp_path / "up.onnx", torch.randn(1, 2, 64))
    assert info["buffer_size"] is None, "the export fell back to a fixed buffer: its graph is wrong at other lengths"
    onnx_stream = OnnxStream(tmp_path / "up.onnx")
    x = torch.randn(1, 2, sum(SIZES))
    got, start = [], 0
    for size in SIZES:
        got.append(torch.as_tensor(onnx_stream(x[..., start : start + size])))
        start += size
    with torch.no_grad():
        offline = model.offline(x)
    comparison = compare_streamed(torch.cat(got, -1), offline, model.delay)
    assert comparison.compared_frames >= 30
    assert comparison.max_rel_error <= 1e-5
