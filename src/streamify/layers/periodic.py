"""A pattern periodic in time (an alternating-sign mask, say), emitted in phase with the offline signal.

The converter uses it for tensors that do not depend on the signal's values but vary periodically
along time, e.g. acids-rave's PQMF, which builds ``mask = torch.ones_like(x); mask[..., 1::2, ::2] = -1``
and multiplies the bands by it: offline, frame ``t`` of the mask is ``period[..., t % P]``; streamed, the
layer counts the frames it has emitted (per batch item) and emits the same values, shifted by its delay.
"""

from __future__ import annotations

import torch
from torch import Tensor

from streamify.layers.base import StreamingModule


class Periodic(StreamingModule):
    """Emits ``period[..., t % P]`` for the offline frames ``t`` that its input's frames stand for.

    Args:
        period: ``[*shape, P]``, one period of the pattern (without the batch axis).

    Only the input's batch size, length, dtype and device are read. State: ``position`` ``[batch]``,
    frames emitted since the stream started.

    Shape:
        input ``[batch, ..., n]``, any ``n``; output ``[batch, *shape, n]``, in phase with the
        offline pattern shifted by the input's delay.

    >>> import torch
    >>> from streamify.layers.periodic import Periodic
    >>> signs = Periodic(torch.tensor([[1.0, -1.0]]))
    >>> signs(torch.zeros(1, 1, 3))
    tensor([[[ 1., -1.,  1.]]])
    >>> signs(torch.zeros(1, 1, 3))
    tensor([[[-1.,  1., -1.]]])
    """

    _state_buffers = ("position",)

    def __init__(self, period: Tensor) -> None:
        super().__init__()
        self.register_buffer("period", period.detach().clone())
        self.masks_input = False
        self.register_buffer("position", torch.zeros(0, dtype=torch.long), persistent=False)
        self._configure()

    def _configure(self) -> None:
        self.delay = self.input_delay

    def _allocate(self, x: Tensor) -> None:
        self.position = torch.zeros(x.size(0), dtype=torch.long, device=x.device)

    def _release_state(self) -> None:
        self.position = torch.zeros(0, dtype=torch.long, device=self.position.device)

    def _reset_items(self, index: Tensor) -> None:
        self.position.index_fill_(0, index, 0)

    def _emit(self, frames: Tensor, x: Tensor) -> Tensor:
        """``period`` at offline frames ``frames`` ``[batch, n]``: ``[batch, *shape, n]``."""
        index = torch.remainder(frames, self.period.size(-1))
        values = self.period.to(dtype=x.dtype, device=x.device).index_select(-1, index.flatten())
        values = values.reshape(list(self.period.shape[:-1]) + [frames.size(0), frames.size(1)])
        return values.movedim(-2, 0)

    def stream(self, x: Tensor) -> Tensor:
        n = x.size(-1)
        steps = torch.arange(n, device=x.device).unsqueeze(0)
        frames = self.position.unsqueeze(1) + steps - self.delay
        self.position = self.position + n
        return self._emit(frames, x)

    def offline(self, x: Tensor) -> Tensor:
        frames = torch.arange(x.size(-1), device=x.device).unsqueeze(0).expand(x.size(0), -1)
        return self._emit(frames, x)

    def extra_repr(self) -> str:
        return f"period={self.period.size(-1)}, shape={tuple(self.period.shape[:-1])}"
