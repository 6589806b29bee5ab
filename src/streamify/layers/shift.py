"""Time shifts: delay lines, crops and pads along the time axis.

None of them mixes frames, so each only moves the stream's delay: a delay line of
``frames`` adds ``frames``, a crop of ``left`` frames adds ``left`` (the offline
output starts later in the signal), a pad of ``left`` frames removes ``left`` (the
offline output starts earlier). Intermediate delays may thus be negative; the
layers that consume such a stream choose their caches accordingly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from streamify.layers.base import StreamingError, StreamingModule

PAD_MODES = ("constant", "reflect", "replicate", "circular")


class Delay(StreamingModule):
    """A delay line of ``frames`` frames: output ``[batch, channels, n]`` is the input ``frames`` frames later.

    Offline it is the identity. State: ``buffer`` ``[batch, channels, frames]``; inside converted models a
    delay line may also carry ``[batch, ..., n]`` tensors of more axes (time last), its buffer then
    ``[batch, ..., frames]``.

    Shape:
        input ``[batch, channels, n]``, any ``n``; output ``[batch, channels, n]``, ``frames`` frames late
        (``delay = input_delay + frames``).

    >>> import torch
    >>> from streamify.layers import Delay
    >>> line = Delay(2)
    >>> line(torch.tensor([[[1.0, 2.0, 3.0]]]))
    tensor([[[0., 0., 1.]]])
    >>> line(torch.tensor([[[4.0, 5.0, 6.0]]]))
    tensor([[[2., 3., 4.]]])
    """

    _state_buffers = ("buffer",)
    takes_early_stream = True
    keeps_early_stream = True

    def __init__(self, frames: int, channels: int = -1) -> None:
        super().__init__()
        if frames < 0:
            raise StreamingError(f"streamify: Delay: frames must be >= 0, got {frames}")
        self.frames = int(frames)
        self.in_channels = channels
        self.out_channels = channels
        self.masks_input = False
        self.register_buffer("buffer", torch.zeros(0, max(channels, 0), self.frames), persistent=False)
        self._configure()

    def _configure(self) -> None:
        self.delay = self.input_delay + self.frames

    def _allocate(self, x: Tensor) -> None:
        shape = list(x.shape[:-1]) + [self.frames]
        self.buffer = torch.zeros(shape, dtype=x.dtype, device=x.device)

    def _release_state(self) -> None:
        self.buffer = torch.zeros(
            0, self.buffer.size(1), self.frames, dtype=self.buffer.dtype, device=self.buffer.device
        )

    def _reset_items(self, index: Tensor) -> None:
        self.buffer.index_fill_(0, index, 0.0)

    def stream(self, x: Tensor) -> Tensor:
        if self.frames == 0:
            return x
        n = x.size(-1)
        z = torch.cat([self.buffer, x], -1)
        self.buffer = z.narrow(-1, n, z.size(-1) - n).detach()
        return z.narrow(-1, 0, n)

    def offline(self, x: Tensor) -> Tensor:
        return x

    def extra_repr(self) -> str:
        return f"frames={self.frames}"


class Crop(StreamingModule):
    """Drop ``left`` frames at the start and ``right`` at the end of the offline signal.

    Streaming, the input passes through unchanged and the delay grows by ``left``.

    Shape:
        streaming, input ``[batch, channels, n]``, output the same; offline, ``[batch, channels, t]``
        to ``[batch, channels, t - left - right]``.

    >>> import torch
    >>> from streamify.layers import Crop
    >>> crop = Crop(3, 1)
    >>> crop(torch.randn(1, 2, 4)).shape, crop.delay
    (torch.Size([1, 2, 4]), 3)
    >>> crop.offline(torch.randn(1, 2, 10)).shape
    torch.Size([1, 2, 6])
    """

    takes_early_stream = True
    keeps_early_stream = True

    def __init__(self, left: int, right: int = 0) -> None:
        super().__init__()
        if left < 0 or right < 0:
            raise StreamingError(f"streamify: Crop: left and right must be >= 0, got ({left}, {right}); pad with Pad")
        self.left = int(left)
        self.right = int(right)
        self.masks_input = False
        self._configure()

    def _configure(self) -> None:
        self.delay = self.input_delay + self.left

    def stream(self, x: Tensor) -> Tensor:
        return x

    def offline(self, x: Tensor) -> Tensor:
        return x.narrow(-1, self.left, x.size(-1) - self.left - self.right)

    def extra_repr(self) -> str:
        return f"left={self.left}, right={self.right}"


class Pad(StreamingModule):
    """Pad the offline signal by ``left`` and ``right`` frames (``F.pad`` modes).

    Streaming, the input passes through and the delay shrinks by ``left``; frames of
    the stream before the offline start take the constant ``value`` (other modes read
    frames a stream does not have yet, so only the start of a stream differs).

    Shape:
        streaming, input ``[batch, channels, n]``, output the same; offline, ``[batch, channels, t]``
        to ``[batch, channels, left + t + right]``.

    >>> import torch
    >>> from streamify.layers import Pad
    >>> pad = Pad(2, 1)
    >>> pad(torch.randn(1, 2, 4)).shape, pad.delay
    (torch.Size([1, 2, 4]), -2)
    >>> pad.offline(torch.randn(1, 2, 10)).shape
    torch.Size([1, 2, 13])
    """

    takes_early_stream = True
    makes_early_stream = True  # its delay is the input's minus ``left``
    keeps_early_stream = True

    def __init__(self, left: int, right: int = 0, mode: str = "constant", value: float = 0.0) -> None:
        super().__init__()
        if left < 0 or right < 0:
            raise StreamingError(f"streamify: Pad: left and right must be >= 0, got ({left}, {right}); crop with Crop")
        if mode not in PAD_MODES:
            raise StreamingError(f"streamify: Pad: mode {mode!r} is not one of {PAD_MODES}")
        self.left = int(left)
        self.right = int(right)
        self.mode = mode
        self.value = float(value)
        self.pad_value = self.value if mode == "constant" else 0.0
        self._configure()

    def _configure(self) -> None:
        self.delay = self.input_delay - self.left

    def pad_with_zeros(self) -> bool:
        switched = self.mode != "constant"
        if switched:
            self.mode, self.value, self.pad_value = "constant", 0.0, 0.0
        return switched

    def stream(self, x: Tensor) -> Tensor:
        return self._mask_input(x)

    def offline(self, x: Tensor) -> Tensor:
        if self.mode == "constant":
            return F.pad(x, [self.left, self.right], mode="constant", value=self.value)
        return F.pad(x, [self.left, self.right], mode=self.mode)

    def extra_repr(self) -> str:
        return f"left={self.left}, right={self.right}, mode={self.mode!r}"
