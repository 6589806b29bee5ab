"""Conversion-time verification (never silently wrong) and the rule table's ``streamify.register``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import streamify
from helpers import assert_streams_exactly
from streamify import StreamingError
from streamify.convert.verify import schedules, tolerance
from streamify.layers import Conv1d
from streamify.layers.torch_layers import MODULE_RULES, unregister


class Smoother(nn.Module):
    """A user layer: a centred 5-tap filter written with F.conv1d (no torch time layer inside)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 5, padding=2)

    def forward(self, x):
        return F.conv1d(x, self.conv.weight, self.conv.bias, padding=2)


class Misreported(Conv1d):
    """A streaming conv that reports one frame of delay more than it has."""

    def _configure(self) -> None:
        super()._configure()
        self.delay += 1


def _model() -> nn.Module:
    return nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.ReLU(), Smoother(4), nn.Conv1d(4, 2, 3, padding=1))


@pytest.fixture
def registered():
    added = []

    def add(cls, handler=None, **kwargs):
        streamify.register(cls, handler, **kwargs)
        added.append(cls)

    yield add
    for cls in added:
        unregister(cls)


def test_register_teaches_the_converter_a_layer(registered):
    registered(Smoother, lambda m: Conv1d.from_torch(m.conv))
    stream = streamify.convert(_model().double(), torch.randn(1, 2, 64, dtype=torch.float64))
    kinds = [type(layer).__name__ for layer in stream.layers]
    assert kinds.count("Conv1d") == 3, kinds  # the registered layer became one streaming conv, kept whole
    assert stream.delay == 4
    assert assert_streams_exactly(stream, 2, frames=256).max_abs_error <= 1e-10


def test_verification_names_a_layer_registered_with_a_wrong_delay(registered):
    registered(Smoother, lambda m: Misreported.from_torch(m.conv))
    with pytest.raises(StreamingError) as info:
        streamify.convert(_model().double(), torch.randn(1, 2, 64, dtype=torch.float64))
    message = str(info.value)
    assert "verification failed" in message
    assert "2:Misreported" in message, message  # the layer (path 2 of the Sequential), first in call order
    assert "delay 4" in message  # the delay it reports
    assert "test_verification.py" in message, "the source line of the layer is named"


def test_verify_false_returns_the_unchecked_result(registered):
    registered(Smoother, lambda m: Misreported.from_torch(m.conv))
    stream = streamify.convert(_model().double(), torch.randn(1, 2, 64, dtype=torch.float64), verify=False)
    assert stream.delay == 5  # wrong, as registered: the caller opted out of the check


def test_a_handler_that_computes_something_else_is_refused_at_the_layer(registered):
    registered(Smoother, lambda m: Conv1d.from_torch(m.conv, padding=0))
    with pytest.raises(StreamingError, match=r"layer '2' \(.*Smoother\).*computes something else"):
        streamify.convert(_model(), torch.randn(1, 2, 64))


def test_register_rejects_bad_arguments():
    with pytest.raises(TypeError):
        streamify.register(int, lambda m: m)
    with pytest.raises(TypeError):
        streamify.register(Smoother)
    assert Smoother not in MODULE_RULES


def test_register_a_refusal(registered):
    registered(Smoother, refusal="mixes the whole signal; use a windowed version")
    with pytest.raises(StreamingError, match=r"layer '2' .*Smoother.*mixes the whole signal; use a windowed"):
        streamify.convert(_model(), torch.randn(1, 2, 64))


def test_schedules_cover_the_probe_with_valid_buffers():
    for total, multiple in ((96, 8), (6, 1), (4096, 2048)):
        plans = schedules(total, multiple)
        assert len(plans) == 2
        for sizes in plans:
            assert sum(sizes) == total and all(s > 0 and s % multiple == 0 for s in sizes)
        assert plans[0][0] == multiple


class WrongAtLength(Conv1d):
    """A streaming conv whose calls of ``length`` input frames come out scaled by ``1 + error`` (``length`` 0: all),
    in ``only`` dtype (None: any)."""

    length = 5
    error = 1e-3
    only = None

    def stream(self, x):
        y = super().stream(x)
        wrong = self.length in (0, x.size(-1)) and self.only in (None, x.dtype)
        return y * (1 + self.error) if wrong else y


def _wrong(length: int, error: float, only=None):
    return type("Wrong", (WrongAtLength,), {"length": length, "error": error, "only": only})


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("length", [1, 5])
def test_verification_streams_every_schedule(registered, length, dtype):
    """A layer wrong only in calls of one buffer length: 1 frame (first schedule) or 5 (the irregular one)."""
    registered(Smoother, lambda m: _wrong(length, 1e-3).from_torch(m.conv))
    with pytest.raises(StreamingError, match="verification failed.*Wrong"):
        streamify.convert(_model().to(dtype), torch.randn(1, 2, 64, dtype=dtype))


def _converts(registered, error: float, dtype: torch.dtype) -> bool:
    registered(Smoother, lambda m: _wrong(0, error, dtype).from_torch(m.conv))
    x = 4 * torch.randn(1, 2, 64, dtype=dtype, generator=torch.Generator().manual_seed(0))  # output peak > 1
    try:
        streamify.convert(_model().to(dtype), x)
    except StreamingError as error:
        assert "verification failed" in str(error)
        return False
    return True


def test_the_float64_bar_refuses_10_times_the_bar_and_accepts_a_tenth(registered):
    """Verification's bar is the project's: 1e-10 of the peak in float64 (a stream off by 1e-9 of it is refused)."""
    assert tolerance(torch.float64, 2.0) == pytest.approx(2e-10)
    assert not _converts(registered, 1e-9, torch.float64)
    assert _converts(registered, 1e-11, torch.float64)


def test_the_float32_bar_refuses_10_times_the_bar_and_accepts_a_tenth(registered):
    """1e-5 of the peak in float32 (a layer wrong in float32 only: the float64 pass sees nothing)."""
    assert not _converts(registered, 1e-4, torch.float32)
    assert _converts(registered, 1e-6, torch.float32)


class ReflectThenConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 2, 5)

    def forward(self, x):
        return self.conv(F.pad(x, (4, 0), mode="reflect"))


def test_reflect_padding_passes_verification():
    """Only the start of a reflect-padded stream differs: verification must not refuse it."""
    stream = streamify.convert(ReflectThenConv(), torch.randn(1, 2, 64))
    assert stream.delay == 0
