"""Chained methods (``encode -> decode``) in a host: the second starts its stream where the first's signal starts.

In a patch, ``decode`` is fed by another nn~ object running ``encode``: it first receives
silence (the host's own buffering, then ``encode``'s warm-up frames, which a fresh stream
outputs as zeros), then the latents. A fresh ``decode`` stream taking that silence for latent
frames would play the decoder's answer to zero latents (a burst) and differ from ``forward``
for a receptive field after the signal arrives (its layers would see those frames as signal,
not as the offline model's padding). :class:`StartsAtSignal` keeps each batch item's stream
fresh until its first frame that is not all zeros: the chain then equals ``forward`` (the
offline ``decode(encode(x))``) from its first output sample, whatever the host's latency.
"""

from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor

from streamify.layers.base import StreamingModule


def starts_at_signal(method) -> bool:
    """Whether an exported method (a :class:`streamify.export.methods.ConvertedMethod`) waits for its input's
    signal: those whose input runs at a lower rate than audio, i.e. another method's output (latents)."""
    return int(method.in_ratio) > 1


#: timing attributes that the wrapper reports as its model's
_TIMING = ("delay", "input_delay", "ratio_num", "ratio_den", "buffer_multiple", "receptive_field")


class StartsAtSignal(StreamingModule):
    """``model``, whose fresh stream (per batch item) starts at the first input frame that is not all zeros.

    Until then the item's output is zeros and its stream stays fresh; afterwards every buffer goes
    straight to ``model``. A reset (whole stream or items) waits for the signal again.

    Shape:
        as ``model``: ``[batch, in_channels, n]`` to ``[batch, out_channels, n / ratio]``, ``n`` a
        multiple of ``buffer_multiple``.

    >>> import copy, torch
    >>> from streamify.layers import ConvTranspose1d
    >>> decoder = ConvTranspose1d(2, 1, 4, stride=2, padding=1)
    >>> chained, alone = StartsAtSignal(copy.deepcopy(decoder)), copy.deepcopy(decoder)
    >>> z = torch.randn(1, 2, 6)
    >>> y = chained(torch.cat([torch.zeros(1, 2, 3), z], 2))  # three silent frames, then the signal
    >>> bool((y[..., :6] == 0).all()), torch.equal(y[..., 6:], alone(z))
    (True, True)
    """

    def __init__(self, model: StreamingModule) -> None:
        super().__init__()
        self.model = model
        for name in _TIMING:
            setattr(self, name, int(getattr(model, name)))
        self.in_channels = int(model.in_channels)
        self.out_channels = int(model.out_channels)
        self.layer_name = model.layer_name
        self.dtype_marker = model.dtype_marker
        self.started = []
        self.all_started: bool = False

    @torch.jit.export
    def advance(self, x: Tensor) -> Tensor:
        """One validated buffer (see :meth:`StreamingModule.advance`): straight to ``model`` once every item started."""
        if self.all_started:
            return self.model.advance(x)
        return self._wait_for_signal(x)

    def _wait_for_signal(self, x: Tensor) -> Tensor:
        """Stream ``x`` in segments that end where a waiting item's signal starts (chunks of ``buffer_multiple``
        frames); an item still waiting at the end of a segment is reset and its output zeroed. One call where
        every item starts at the first frame, as a plain stream would make."""
        batch, n, chunk = x.size(0), x.size(2), self.buffer_multiple
        if len(self.started) != batch:
            self.started = [False for _ in range(batch)]
        # the first chunk of each item that is not all zeros (n: none in this buffer)
        sounding = x.ne(0).any(1).reshape(batch, n // chunk, chunk).any(2)
        firsts = torch.where(sounding.any(1), sounding.to(torch.uint8).argmax(1) * chunk, n)
        starts: List[int] = firsts.tolist()
        cuts: List[int] = [n]
        for item in range(batch):
            if self.started[item]:
                starts[item] = 0
            elif 0 < starts[item] < n and starts[item] not in cuts:
                cuts.append(starts[item])
        cuts.sort()
        outputs: List[Tensor] = []
        begin = 0
        for end in cuts:
            y = self.model.advance(x.narrow(2, begin, end - begin))
            waiting: List[int] = []
            for item in range(batch):
                if starts[item] >= end:
                    waiting.append(item)
            if len(waiting) > 0:  # streamed only to keep the batch together: back to fresh, silent
                y = y.index_fill(0, torch.tensor(waiting, dtype=torch.long, device=y.device), 0.0)
                self.model.reset(waiting)
            outputs.append(y)
            begin = end
        self.started = [start < n for start in starts]
        self.all_started = all(self.started)
        return torch.cat(outputs, 2) if len(outputs) > 1 else outputs[0]

    @torch.jit.export
    def reset(self, indices: Optional[List[int]] = None) -> None:
        self.model.reset(indices)
        if indices is None:
            self.started = torch.jit.annotate(List[bool], [])
        else:
            for item in indices:
                if 0 <= item < len(self.started):
                    self.started[item] = False
        self.all_started = False


# set as an object, not a string (this module postpones annotations): TorchScript reads the type of an empty list from it
StartsAtSignal.__annotations__ = {"started": List[bool]}
