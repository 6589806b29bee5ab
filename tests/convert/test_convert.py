"""Conversion of plain PyTorch models: streamed output == offline output shifted by the reported delay."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from plain_models import CroppedResidualUnit, CroppedStack, HiFiGANGenerator, TinyAutoencoder
from torch import nn

import streamify.layers as sl
from streamify.convert import convert
from streamify.exactness import compare_streamed, measure_delay, stream_signal
from streamify.runtime.state import set_streaming

TOL = 1e-10


def _schedule(total: int, multiple: int) -> list[int]:
    """Varying buffer sizes (multiples of ``multiple``) that add up to ``total``."""
    pattern = [1, 3, 2, 5, 1, 4]
    sizes, used, i = [], 0, 0
    while used < total:
        size = min(pattern[i % len(pattern)] * multiple, total - used)
        sizes.append(size)
        used += size
        i += 1
    return sizes


def _check(model: nn.Module, x: torch.Tensor, method: str = "forward", warmup: int = 0, min_frames: int = 50):
    stream = convert(model, x, method=method)
    assert x.size(-1) % stream.buffer_multiple == 0
    y = stream_signal(stream, x, _schedule(x.size(-1), stream.buffer_multiple))
    with torch.no_grad():
        offline = getattr(model, method)(x)
    result = compare_streamed(y, offline, stream.delay, warmup=warmup)
    assert result.compared_frames >= min_frames
    assert result.max_abs_error <= TOL, result
    # a one-frame error in the reported delay would be caught
    shifted = compare_streamed(y, offline, stream.delay + 1, warmup=warmup)
    assert shifted.max_abs_error > 1e-6
    if warmup == 0 and stream.delay > 0:
        assert torch.all(y[..., : stream.delay] == 0), "a fresh stream starts with `delay` zero frames"
    return stream, y


@pytest.fixture(autouse=True)
def _float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(previous)


def test_hifigan_generator_streams_exactly():
    model = HiFiGANGenerator()
    stream, _ = _check(model, torch.randn(2, 8, 48))
    assert stream.ratio == sl.Sequential(nn.Identity()).ratio / 8
    assert measure_delay(stream, model, 8, stream.buffer_multiple * 4) == stream.delay


def test_cropped_residual_unit_becomes_a_delay():
    unit = CroppedResidualUnit(4, 3, 7)
    stream, _ = _check(unit, torch.randn(1, 4, 200))
    # the unpadded conv (span 19) delays the branch by 18 frames, the crop moves the skip by 9 and aligns it
    assert stream.delay == 18
    kinds = [type(layer).__name__ for layer in stream.layers]
    assert "Crop" in kinds and "Delay" in kinds


def test_cropped_stack_streams_exactly():
    _check(CroppedStack(), torch.randn(2, 1, 300))


@pytest.mark.parametrize("method", ["encode", "decode", "forward"])
def test_each_method_converts_with_its_own_timing(method):
    model = TinyAutoencoder()
    x = torch.randn(2, 1, 240) if method != "decode" else torch.randn(2, 4, 40)
    stream, _ = _check(model, x, method=method, min_frames=30)
    expected_ratio = {"encode": 6, "decode": sl.Sequential(nn.Identity()).ratio / 6, "forward": 1}[method]
    assert stream.ratio == expected_ratio
    assert stream.buffer_multiple == (6 if method != "decode" else 1)


def test_model_of_streamify_layers_converts_exactly():
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = sl.Sequential(sl.Conv1d(2, 4, 5, padding=2), nn.ELU(), sl.Conv1d(4, 4, 4, stride=2, padding=1))
            self.head = nn.Conv1d(4, 2, 3, padding=1)

        def forward(self, x):
            return self.head(torch.tanh(self.body(F.pad(x, (3, 0)))))

    model = Mixed()
    x = torch.randn(3, 2, 128)
    stream = convert(model, x)
    set_streaming(model, False)  # the reference: the same model computed offline
    y = stream_signal(stream, x, _schedule(128, stream.buffer_multiple))
    result = compare_streamed(y, model(x), stream.delay)
    assert result.compared_frames > 50 and result.max_abs_error <= TOL


class _LstmNet(nn.Module):
    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode
        self.inp = nn.utils.parametrizations.weight_norm(nn.Conv1d(1, 8, 7))
        self.down = nn.Conv1d(8, 8, 4, stride=2, padding=1)
        self.lstm = nn.LSTM(8, 8, num_layers=2)
        self.out = nn.ConvTranspose1d(8, 1, 4, 2, 1)

    def forward(self, x):
        x = self.down(self.inp(F.pad(x, (3, 3), mode=self.mode)))
        y, _ = self.lstm(x.permute(2, 0, 1))
        return self.out(x + y.permute(1, 2, 0))


def test_lstm_weight_norm_zero_padding_exact_from_first_frame():
    model = _LstmNet("constant")
    _check(model, torch.randn(2, 1, 256))
    before = model.inp.weight.clone()
    convert(model, torch.randn(1, 1, 64))
    assert torch.equal(model.inp.weight, before), "the parametrized original still works unchanged"


def test_lstm_reflect_padding_differs_only_at_the_start():
    model = _LstmNet("reflect")
    x = torch.randn(2, 1, 512)
    stream = convert(model, x)
    y = stream_signal(stream, x, _schedule(512, stream.buffer_multiple))
    with torch.no_grad():
        offline = model(x)
    # reflect padding differs at the very start; the LSTM carries that difference as it decays
    late = compare_streamed(y, offline, stream.delay, warmup=400)
    assert late.compared_frames > 60 and late.max_abs_error < 1e-6
    early = compare_streamed(y, offline, stream.delay, warmup=0, edge=500)
    assert early.max_abs_error > late.max_abs_error


def test_converted_model_scripts_and_matches_eager(tmp_path):
    model = HiFiGANGenerator()
    x = torch.randn(2, 8, 32)
    stream = convert(model, x)
    scripted = torch.jit.script(stream)
    sizes = _schedule(32, stream.buffer_multiple)
    eager_out = stream_signal(stream, x, sizes)
    scripted_out = stream_signal(scripted, x, sizes)
    assert torch.equal(eager_out, scripted_out)
    path = tmp_path / "model.ts"
    torch.jit.save(scripted, str(path))
    loaded = torch.jit.load(str(path))
    loaded.reset()
    assert torch.equal(stream_signal(loaded, x, sizes), eager_out)


def test_reset_and_batch_items_of_a_converted_model():
    model = CroppedStack()
    x = torch.randn(3, 1, 120)
    stream = convert(model, x)
    full = stream_signal(stream, x, [40, 40, 40])
    stream.reset()
    first = stream_signal(stream, x[..., :40], [40])
    stream.reset([1])
    rest = stream_signal(stream, x[..., 40:], [40, 40])
    assert torch.equal(first, full[..., :40])
    assert torch.allclose(rest[[0, 2]], full[[0, 2], :, 40:], atol=0, rtol=0)
    fresh = convert(model, x)
    assert torch.allclose(rest[1:2], stream_signal(fresh, x[1:2, :, 40:], [40, 40]), atol=1e-12)


def test_original_model_is_not_modified():
    model = HiFiGANGenerator()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    convert(model, torch.randn(1, 8, 16))
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
