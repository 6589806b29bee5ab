"""Any host buffer size: an nn~ ``.ts`` is called exactly as nn~ would at that size, a factory through
:class:`streamify.buffering.AnyLengthStream`; the extra latency ``M - gcd(n, M)`` is reported and compensated."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from host_models import coarse_codec

from streamify.host import load_host_model, process_array

MULTIPLE = 16  # coarse_codec's buffer multiple


def signal(frames: int) -> np.ndarray:
    rng = np.random.default_rng(2)
    t = np.arange(frames) / 48000
    return (0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(frames)).astype(np.float32)[None]


@pytest.fixture(scope="module")
def coarse_ts(tmp_path_factory):
    from streamify.export import export_nn_tilde

    path = tmp_path_factory.mktemp("any") / "coarse.ts"
    export_nn_tilde(coarse_codec(), path, torch.randn(1, 1, 4096), sample_rate=48000)
    return path


@pytest.mark.parametrize("buffer", [24, 1000])
def test_factory_takes_any_buffer_at_the_reported_extra_latency(buffer):
    model = load_host_model("host_models:coarse_codec")
    assert model.multiple == MULTIPLE
    extra = MULTIPLE - math.gcd(buffer, MULTIPLE)
    assert extra > 0 and model.extra_latency(buffer) == extra
    x = signal(5000)
    y, report = process_array(model, x, buffer)
    assert report.model_delay == model.delay + extra
    assert any(f"add {extra} samples of latency" in note for note in report.notes)
    reference, _ = process_array(model, x, 4 * MULTIPLE)  # a multiple: no extra latency
    lag = report.model_delay
    np.testing.assert_array_equal(y[:, :lag], 0.0)
    np.testing.assert_allclose(y[:, lag:], reference[:, model.delay : 5000 - extra], rtol=0, atol=1e-6)
    aligned, _ = process_array(model, x, buffer, compensate=True)
    aligned_reference, _ = process_array(model, x, 4 * MULTIPLE, compensate=True)
    np.testing.assert_allclose(aligned, aligned_reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("buffer", [24, 1000, 256])
def test_ts_is_called_as_nn_tilde_would_at_any_buffer(coarse_ts, buffer):
    model = load_host_model(str(coarse_ts))
    assert model.any_length and model.multiple == MULTIPLE
    extra = MULTIPLE - math.gcd(buffer, MULTIPLE)
    assert model.extra_latency(buffer) == extra and model.delay_at(buffer) == model.delay + extra
    x = signal(3000)
    y, report = process_array(model, x, buffer)
    assert report.model_delay == model.delay + extra
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(coarse_ts))
    calls = -(-3000 // buffer)
    padded = np.zeros((1, 1, calls * buffer), np.float32)
    padded[0, 0, :3000] = x[0]
    with torch.inference_mode():
        expected = [
            module.forward(torch.from_numpy(padded[..., i : i + buffer])).numpy()
            for i in range(0, calls * buffer, buffer)
        ]
    np.testing.assert_array_equal(y, np.concatenate(expected, -1)[:, 0, :3000])
    aligned, _ = process_array(model, x, buffer, compensate=True)
    reference, _ = process_array(load_host_model("host_models:coarse_codec"), x, 4 * MULTIPLE, compensate=True)
    np.testing.assert_allclose(aligned, reference, rtol=0, atol=1e-5)
