"""Pointwise modules (activations, 1x1 maps, normalisation over channels) inside streaming models.

A module that maps each time frame on its own (ReLU, Snake, LayerNorm over channels,
BatchNorm in eval mode, ...) streams as it is: same computation, no state, no delay.
"""

from __future__ import annotations

from torch import Tensor, nn

from streamify.layers.base import StreamingModule


class Pointwise(StreamingModule):
    """Wrap a module that acts on each time frame independently (``[batch, channels, n]`` in and out).

    Shape:
        input ``[batch, in_channels, n]``, any ``n``; output ``[batch, out_channels, n]``, in step
        with the input (the delay it is fed).

    >>> import torch
    >>> from streamify.layers import Pointwise
    >>> act = Pointwise(torch.nn.Tanh())
    >>> x = torch.randn(1, 2, 4)
    >>> torch.equal(act(x), torch.tanh(x)), act.delay
    (True, 0)
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.masks_input = False
        self._configure()

    def stream(self, x: Tensor) -> Tensor:
        return self.module(x)

    def offline(self, x: Tensor) -> Tensor:
        return self.module(x)
