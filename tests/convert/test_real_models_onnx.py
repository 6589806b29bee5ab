"""ONNX export with explicit state of the published models of the conversion tests.

Across many consecutive buffers, ``OnnxStream`` (ONNX Runtime) must match the PyTorch
streaming model within 1e-5 relative, from the first buffer.
"""

from __future__ import annotations

import pytest
import torch

import streamify

pytest.importorskip("onnxruntime")
from streamify.export import OnnxStream, export_onnx  # noqa: E402


def _compare(model: torch.nn.Module, channels: int, example_frames: int, tmp_path, buffers: int = 12) -> float:
    torch.manual_seed(0)
    example = torch.randn(1, channels, example_frames)
    path = tmp_path / "model.onnx"
    export_onnx(model, str(path), example)
    onnx_stream = OnnxStream(str(path))
    stream = streamify.convert(model, example)
    unit = stream.buffer_multiple
    sizes = [unit * k for k in (4, 1, 8, 2, 4, 16, 1, 4, 8, 2, 4, 4)][:buffers]
    x = torch.randn(2, channels, sum(sizes))
    torch_out, onnx_out = [], []
    start = 0
    with torch.no_grad():
        for size in sizes:
            chunk = x[..., start : start + size]
            torch_out.append(stream(chunk))
            onnx_out.append(torch.as_tensor(onnx_stream(chunk)))
            start += size
    a, b = torch.cat(torch_out, -1), torch.cat(onnx_out, -1)
    assert a.shape == b.shape and a.abs().max() > 0
    return ((a - b).abs().max() / a.abs().max()).item()


def test_encodec_encoder_and_decoder_with_lstm(encodec_seanet, tmp_path):
    config = dict(channels=1, dimension=8, n_filters=4, ratios=[4, 2], n_residual_layers=1, lstm=2)
    assert _compare(encodec_seanet.SEANetEncoder(**config), 1, 512, tmp_path) <= 1e-5
    assert _compare(encodec_seanet.SEANetDecoder(**config), 8, 64, tmp_path) <= 1e-5


def test_snac_encoder_odd_strides(snac_layers, tmp_path):
    model = snac_layers.Encoder(d_model=4, strides=[3, 7], depthwise=True, attn_window_size=None)
    assert _compare(model, 1, 21 * 24, tmp_path) <= 1e-5


def test_moshi_causal_encoder(moshi_seanet, tmp_path):
    model = moshi_seanet.SEANetEncoder(
        channels=1, dimension=8, n_filters=4, ratios=[4, 2], causal=True, pad_mode="constant"
    )
    assert _compare(model, 1, 512, tmp_path) <= 1e-5
