"""Streaming short-time Fourier transform (``torch.stft``, centered or not).

Offline, ``torch.stft(x, n_fft, hop, center=True)`` pads the signal by ``n_fft // 2`` samples on each side
(``pad_mode``), cuts frames of ``n_fft`` samples every ``hop`` samples, multiplies each by the window (zero
padded to ``n_fft``, centred) and takes its FFT: ``[batch, freqs, 1 + t // hop]``, time last. That is a window
op of span ``n_fft``, stride ``hop`` and left padding ``n_fft // 2`` (0 uncentered), so it streams as a
strided conv (:class:`~streamify.layers.conv.WindowOp`): it keeps the last ``cache`` samples and calls
``torch.stft(center=False)`` on ``cache ++ buffer``::

    low   = max(0, n_fft - hop)
    cache = low + (n_fft // 2 - d_in - low) mod hop
    delay = (cache + d_in - n_fft // 2) / hop  # in frames

The cache starts as zeros, so ``pad_mode='constant'`` is exact from the first frame; ``'reflect'`` (the
default) mirrors samples a stream does not have yet: only the frames that read the left padding, the first
``ceil(n_fft / 2 / hop)`` offline frames, differ (as for reflect-padded convs).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from streamify.layers.base import StreamingError
from streamify.layers.conv import WindowOp
from streamify.layers.framing import _flat_channels

STFT_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def padded_window(window: Optional[Tensor], n_fft: int, win_length: int, where: str) -> Tensor:
    """The analysis window zero-padded to ``n_fft`` samples and centred, as ``torch.stft`` applies it.

    ``None`` is the rectangular window of ``win_length`` samples.
    """
    if win_length < 1 or win_length > n_fft:
        raise StreamingError(f"streamify: {where}: win_length must be in [1, n_fft={n_fft}], got {win_length}")
    if window is None:
        window = torch.ones(win_length)
    if window.dim() != 1 or window.size(0) != win_length:
        raise StreamingError(
            f"streamify: {where}: the window must be 1-D of win_length={win_length} samples, got shape "
            f"{tuple(window.shape)}"
        )
    left = (n_fft - win_length) // 2
    return F.pad(window.detach().clone(), [left, n_fft - win_length - left])


def check_hop(n_fft: int, hop_length: Optional[int], where: str) -> int:
    """``hop_length`` (``n_fft // 4`` when None, as torch's default), or an error naming ``where``."""
    hop = n_fft // 4 if hop_length is None else int(hop_length)
    if n_fft < 1 or hop < 1:
        raise StreamingError(f"streamify: {where}: n_fft and hop_length must be >= 1, got {n_fft} and {hop}")
    return hop


class STFT(WindowOp):
    """Streaming ``torch.stft(x, ..., return_complex=True)``; same arguments.

    Args:
        n_fft, hop_length, win_length, window, center, pad_mode, normalized, onesided: as ``torch.stft``
            (``window`` None: rectangular). The window is a buffer, so ``.to(dtype)`` converts it.

    State: ``cache`` ``[batch, rows, cache_len]`` input samples (``rows``: the axes between batch and time).

    Shape:
        input ``[batch, ..., n]`` real, ``n`` a multiple of ``hop_length``; output
        ``[batch, ..., freqs, n / hop_length]`` complex (``freqs = n_fft // 2 + 1`` onesided, else ``n_fft``),
        ``delay`` frames behind ``torch.stft``'s.

    >>> import torch
    >>> from streamify.layers import STFT
    >>> stft = STFT(8, 2, window=torch.hann_window(8, dtype=torch.float64), pad_mode="constant").double()
    >>> stft.delay, stft.buffer_multiple
    (1, 2)
    >>> x = torch.randn(1, 1, 32, dtype=torch.float64)
    >>> y = torch.cat([stft(x[..., :10]), stft(x[..., 10:])], -1)
    >>> y.shape, y.dtype
    (torch.Size([1, 1, 5, 16]), torch.complex128)
    >>> offline = torch.stft(x[0], 8, 2, window=stft.window, pad_mode="constant", return_complex=True)
    >>> torch.allclose(y[0, ..., 1:], offline[..., :15], atol=1e-12)
    True
    """

    def __init__(
        self,
        n_fft: int,
        hop_length: Optional[int] = None,
        win_length: Optional[int] = None,
        window: Optional[Tensor] = None,
        center: bool = True,
        pad_mode: str = "reflect",
        normalized: bool = False,
        onesided: bool = True,
    ) -> None:
        hop = check_hop(n_fft, hop_length, "STFT")
        win_length = n_fft if win_length is None else int(win_length)
        if pad_mode not in STFT_PAD_MODES:
            raise StreamingError(f"streamify: STFT: pad_mode {pad_mode!r} is not one of {STFT_PAD_MODES}")
        super().__init__(n_fft, hop, 1, n_fft // 2 if center else 0, -1)
        self.n_fft = int(n_fft)
        self.hop_length = hop
        self.win_length = win_length
        self.register_buffer("window", padded_window(window, n_fft, win_length, "STFT"))
        self.dtype_marker = torch.zeros(0, dtype=self.window.dtype)
        self.center = bool(center)
        self.pad_mode = pad_mode
        self.normalized = bool(normalized)
        self.onesided = bool(onesided)
        self.input_rank = -2
        self.input_layout = "[batch, ..., time]"
        self.changes_layout = True

    def _allocate(self, x: Tensor) -> None:
        rows = _flat_channels(x, 1)
        self.cache = torch.full((x.size(0), rows, self.cache_len), self.pad_value, dtype=x.dtype, device=x.device)

    def _spectrum(self, x: Tensor, center: bool) -> Tensor:
        """``torch.stft`` of ``x`` ``[rows, t]`` with this layer's settings: ``[rows, freqs, frames]``."""
        return torch.stft(
            x,
            self.n_fft,
            self.hop_length,
            self.n_fft,
            self.window,
            center=center,
            pad_mode=self.pad_mode,
            normalized=self.normalized,
            onesided=self.onesided,
            return_complex=True,
        )

    def stream(self, x: Tensor) -> Tensor:
        batch, n = x.size(0), x.size(-1)
        lead = list(x.shape[:-1])
        z = self._windows_input(x.reshape(batch, -1, n))
        y = self._spectrum(z.reshape(-1, z.size(-1)), False)
        return y.reshape(lead + [y.size(-2), n // self.hop_length])

    def offline(self, x: Tensor) -> Tensor:
        y = self._spectrum(x.reshape(-1, x.size(-1)), self.center)
        return y.reshape(list(x.shape[:-1]) + [y.size(-2), y.size(-1)])

    def extra_repr(self) -> str:
        return (
            f"n_fft={self.n_fft}, hop_length={self.hop_length}, win_length={self.win_length}, center={self.center}, "
            f"pad_mode={self.pad_mode!r}, delay={self.delay}, cache={self.cache_len}"
        )
