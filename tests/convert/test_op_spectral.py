"""Pattern 7 of issue 20, the spectral half: framing (``Tensor.unfold``), overlap-add (``F.fold``),
centered ``torch.stft`` / ``torch.istft``, FFTs within frames, converted at the op level onto the
streaming layers Frame, OverlapAddFrames, STFT, ISTFT (float64: exact; reflect pads after the warm-up)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import published_module  # at import: later folders' conftest modules take the name 'conftest'
from helpers import assert_streams_exactly, warmup_frames
from streamify import StreamingError
from streamify.convert import convert

TOL = 1e-10


def _stream(model: nn.Module, channels: int, frames: int, warmup: bool = False):
    model = model.double().eval()
    example = torch.randn(1, channels, frames, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    stream = convert(model, example)
    assert stream.capture == "aten"
    skip = warmup_frames(stream) if warmup else 0
    assert assert_streams_exactly(stream, channels, frames=8 * frames, warmup=skip).max_abs_error <= TOL
    return stream


class FrameFilter(nn.Module):
    """Frames (unfold), filters each frame by FFT (a frame-local FFT), overlap-adds them back (F.fold)."""

    def __init__(self, size: int = 8, step: int = 4) -> None:
        super().__init__()
        self.size, self.step = size, step
        self.register_buffer("response", torch.randn(size // 2 + 1, dtype=torch.cfloat))

    def forward(self, x):
        b, c, _ = x.shape
        frames = x.unfold(-1, self.size, self.step)  # [B, C, L, size]
        frames = torch.fft.irfft(
            torch.fft.rfft(frames, dim=-1) * self.response.to(frames.dtype.to_complex()), n=self.size, dim=-1
        )
        cols = frames.permute(0, 1, 3, 2).reshape(b, c * self.size, -1)  # [B, C*size, L]
        length = (cols.shape[-1] - 1) * self.step + self.size
        return F.fold(cols, (1, length), (1, self.size), stride=(1, self.step)).squeeze(2)


def test_framing_frame_local_fft_and_overlap_add():
    stream = _stream(FrameFilter(), 2, 64)
    assert stream.buffer_multiple == 4


class Spectrogram(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.hann_window(16))

    def forward(self, x):
        spec = torch.stft(x.squeeze(1), 16, 4, window=self.window.to(x.dtype), center=True, return_complex=True)
        return torch.log1p(spec.abs())


def test_centered_stft_magnitude():
    stream = _stream(Spectrogram(), 1, 128, warmup=True)  # reflect edge: inexact only in the warm-up
    assert stream.ratio == 4


class RoundTrip(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.hann_window(16))
        self.gain = nn.Conv1d(9, 9, 1)

    def forward(self, x):
        w = self.window.to(x.dtype)
        spec = torch.stft(x.squeeze(1), 16, 4, window=w, center=True, pad_mode="constant", return_complex=True)
        spec = torch.complex(self.gain(spec.real), self.gain(spec.imag))
        return torch.istft(spec, 16, 4, window=w, center=True).unsqueeze(1)


def test_stft_then_istft():
    stream = _stream(RoundTrip(), 1, 128)
    assert stream.ratio == 1


@pytest.mark.parametrize("padding", ["center", "same"])
def test_vocos_istft_head(padding):
    """vocos' ISTFT head: "center" calls torch.istft; "same" is irfft per frame, F.fold, and a division by
    the window envelope computed from the whole signal, behind an ``assert`` on its values: torch.export
    cannot capture that assert and the fx tracer refuses the fold; the message gives both causes."""
    spectral = published_module("vocos", "spectral_ops", stubs=("scipy",))

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.istft = spectral.ISTFT(n_fft=16, hop_length=4, win_length=16, padding=padding)

        def forward(self, x):
            return self.istft(torch.complex(x[:, :9], x[:, 9:])).unsqueeze(1)

    if padding == "center":
        _stream(Head(), 18, 32)
    else:
        with pytest.raises(StreamingError, match=r"functional.fold .*at the op level: .*data-dependent"):
            convert(Head().double(), torch.randn(1, 18, 32, dtype=torch.float64))
