"""Streaming inverse short-time Fourier transform (``torch.istft``, centered or not).

Offline, ``torch.istft`` takes the inverse FFT of every frame, multiplies it by the window, overlap-adds the
frames ``hop`` samples apart into ``f``, divides by the envelope ``env`` (the window squared, overlap-added
the same way) and drops ``n_fft // 2`` samples at each end (centered). Streaming, the frames are overlap-added
across calls (:class:`~streamify.layers.conv_transpose.OverlapAdd`, tail ``n_fft - hop`` samples) and each
emitted sample is divided by the envelope at its offline position ``p`` (a sample of ``f``)::

    env[p] = sum over frames j >= 0 with 0 <= p - j * hop < n_fft of window[p - j * hop] ** 2
    delay  = d_in * hop + n_fft // 2           # in samples (padding 0 uncentered)

``env`` changes only at the start of the signal: from ``p0 = n_fft - hop`` on it is periodic,
``env[p] = env[p0 + (p - p0) mod hop]``. The layer keeps that table (``p0 + hop`` values) and counts the
samples it emitted, so the division is the offline one from the first sample; frames before the offline
start are zero (input masking), so a fresh stream is exact from its first offline sample. The right end,
which a stream never reaches, is the only place where offline divides by another envelope.
"""

from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from streamify.layers.base import StreamingError
from streamify.layers.conv_transpose import OverlapAdd
from streamify.layers.framing import _flat_channels
from streamify.layers.overlap_add import overlap_add
from streamify.layers.stft import check_hop, padded_window

#: torch.istft refuses an envelope below this (its "window overlap add min" check)
NOLA_MIN = 1e-11


def envelope_table(window: Tensor, hop: int) -> Tensor:
    """``env[p]`` for ``p < max(n_fft - hop, 0) + hop`` (see the module docstring); from there on it repeats."""
    n_fft = window.size(0)
    length = max(n_fft - hop, 0) + hop
    frames = (length - 1) // hop + 1  # every frame that starts before ``length``
    squares = (window * window).view(1, n_fft, 1).expand(1, n_fft, frames)
    full = F.fold(squares, [1, (frames - 1) * hop + n_fft], [1, n_fft], [1, 1], [0, 0], [1, hop])
    return full.view(-1).narrow(0, 0, length)


class ISTFT(OverlapAdd):
    """Streaming ``torch.istft(x, ...)`` (real output); same arguments.

    Args:
        n_fft, hop_length, win_length, window, center, normalized, onesided: as ``torch.istft``
            (``window`` None: rectangular). ``length`` only cuts the end of the offline signal: not needed.

    Refused where ``torch.istft`` would refuse every signal: an envelope below 1e-11 past the samples that
    centering drops (the window-hop pair does not satisfy the NOLA condition).

    State: ``tail`` ``[batch, rows, n_fft - hop]`` partial samples and ``position`` ``[batch]``, samples
    emitted since the stream started (``rows``: the axes between batch and frequency).

    Shape:
        input ``[batch, ..., freqs, n]`` complex, any ``n``; output ``[batch, ..., n * hop_length]`` real,
        ``delay`` samples behind ``torch.istft``'s output.

    >>> import torch
    >>> from streamify.layers import ISTFT
    >>> window = torch.hann_window(8, dtype=torch.float64)
    >>> istft = ISTFT(8, 2, window=window).double()
    >>> istft.delay
    4
    >>> spec = torch.stft(torch.randn(1, 40, dtype=torch.float64), 8, 2, window=window, return_complex=True)
    >>> spec = spec.unsqueeze(1)  # [batch, channels, freqs, frames]
    >>> y = torch.cat([istft(spec[..., :7]), istft(spec[..., 7:])], -1)
    >>> y.shape
    torch.Size([1, 1, 42])
    >>> offline = torch.istft(spec[:, 0], 8, 2, window=window)
    >>> torch.allclose(y[..., 4:], offline[..., :38], atol=1e-12)
    True
    """

    _state_buffers = ("tail", "position")

    def __init__(
        self,
        n_fft: int,
        hop_length: Optional[int] = None,
        win_length: Optional[int] = None,
        window: Optional[Tensor] = None,
        center: bool = True,
        normalized: bool = False,
        onesided: bool = True,
    ) -> None:
        hop = check_hop(n_fft, hop_length, "ISTFT")
        win_length = n_fft if win_length is None else int(win_length)
        super().__init__(n_fft, hop, n_fft // 2 if center else 0, -1)
        self.n_fft = int(n_fft)
        self.hop_length = hop
        self.win_length = win_length
        self.register_buffer("window", padded_window(window, n_fft, win_length, "ISTFT"))
        self.dtype_marker = torch.zeros(0, dtype=self.window.dtype)
        self.center = bool(center)
        self.normalized = bool(normalized)
        self.onesided = bool(onesided)
        self.steady_from = max(self.n_fft - hop, 0)
        self._check_envelope()
        self.register_buffer("position", torch.zeros(0, dtype=torch.long), persistent=False)
        self.input_rank = -3
        self.complex_input = True
        self.input_layout = "[batch, ..., freqs, time]"
        self.changes_layout = True

    def _check_envelope(self) -> None:
        """Refuse what torch.istft refuses for every signal: a hop over the window, a vanishing envelope.

        torch checks the envelope over all the samples it keeps, the end included: the table of the
        reversed window is the envelope counted from the end.
        """
        if self.hop_length > self.win_length:
            raise StreamingError(
                f"streamify: ISTFT: hop_length {self.hop_length} exceeds win_length {self.win_length}, which "
                "torch.istft refuses (0 < hop_length <= win_length)"
            )
        low = float("inf")
        for window in (self.window.double(), self.window.double().flip(0)):
            table = envelope_table(window, self.hop_length)
            # the kept samples start at ``padding``; from ``steady_from`` on the table's last period repeats
            low = min(low, table[min(self.padding, self.steady_from) :].min().item())
        if low < NOLA_MIN:
            raise StreamingError(
                f"streamify: ISTFT: the window overlap-added every {self.hop_length} samples falls to {low:.3g} "
                f"(below {NOLA_MIN}): torch.istft refuses this window and hop (NOLA condition); use a smaller hop "
                "or another window"
            )

    def _tail_channels(self, x: Tensor) -> int:
        return _flat_channels(x, 2)

    def _allocate(self, x: Tensor) -> None:
        self.tail = torch.zeros(
            x.size(0), _flat_channels(x, 2), self.tail_len, dtype=self.window.dtype, device=x.device
        )
        self.position = torch.zeros(x.size(0), dtype=torch.long, device=x.device)

    def _release_state(self) -> None:
        self.tail = torch.zeros(0, self.tail.size(1), self.tail_len, dtype=self.tail.dtype, device=self.tail.device)
        self.position = torch.zeros(0, dtype=torch.long, device=self.position.device)

    def _reset_items(self, index: Tensor) -> None:
        self.tail.index_fill_(0, index, 0.0)
        self.position.index_fill_(0, index, 0)

    def _frames(self, spec: Tensor) -> Tensor:
        """Windowed inverse FFT of every frame: ``[..., freqs, n]`` complex to ``[..., n_fft, n]`` real."""
        norm = "ortho" if self.normalized else "backward"
        if not self.onesided:  # a real output reads only the first half, as torch.istft does
            spec = spec.narrow(-2, 0, self.n_fft // 2 + 1)
        frames = torch.fft.irfft(spec, n=self.n_fft, dim=-2, norm=norm)
        return frames * self.window.unsqueeze(-1)

    def _envelope(self, first: Tensor, n: int, dtype: torch.dtype) -> Tensor:
        """The envelope at the offline positions ``first + [0, n)`` (``first`` ``[batch]``): ``[batch, 1, n]``.

        Positions before the offline signal (a stream's warm-up) get 1, as do those of a zero envelope
        that centering drops.
        """
        table = envelope_table(self.window.to(dtype), self.hop_length)
        p = first.unsqueeze(1) + torch.arange(n, device=first.device).unsqueeze(0)
        steady = self.steady_from + torch.remainder(p - self.steady_from, self.hop_length)
        index = torch.where(p < self.steady_from, p, steady).clamp(min=0)
        env = table.index_select(0, index.flatten()).view(p.shape)
        env = env.masked_fill((p < 0) | (env == 0.0), 1.0)
        return env.unsqueeze(1)

    def stream(self, x: Tensor) -> Tensor:
        x = self._mask_input(x)
        batch, n = x.size(0), x.size(-1)
        lead: List[int] = list(x.shape[:-2])
        frames = self._frames(x.reshape(batch, -1, x.size(-2), n))
        full = overlap_add(frames, self.hop_length)
        y = self._overlap_add(full, n)
        emitted = n * self.hop_length
        # offline position (a sample of the uncropped signal) of this call's first sample
        first = self.position - self.input_delay * self.hop_length
        y = y / self._envelope(first, emitted, y.dtype)
        self.position = self.position + emitted
        return y.reshape(lead + [emitted])

    def offline(self, x: Tensor) -> Tensor:
        spec = x.reshape(-1, x.size(-2), x.size(-1))
        y = torch.istft(
            spec,
            self.n_fft,
            self.hop_length,
            self.n_fft,
            self.window,
            center=self.center,
            normalized=self.normalized,
            onesided=self.onesided,
        )
        return y.reshape(list(x.shape[:-2]) + [y.size(-1)])

    def extra_repr(self) -> str:
        return (
            f"n_fft={self.n_fft}, hop_length={self.hop_length}, win_length={self.win_length}, center={self.center}, "
            f"delay={self.delay}"
        )
