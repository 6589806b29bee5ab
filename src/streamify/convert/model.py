"""The streaming model that :func:`streamify.convert` returns."""

from typing import List, Optional

import torch
import torch.fx as fx
from torch import Tensor, nn

from streamify.layers.base import StreamingModule


class StreamingModel(StreamingModule):
    """A converted model: a streaming graph of streamify layers and the original's other ops.

    ``forward(x)`` takes a buffer ``[batch, in_channels, n]`` (``n`` a multiple of
    ``buffer_multiple``) and returns the next ``n / ratio`` frames of the model's
    output, which lags the offline output by ``delay`` frames. ``offline(x)`` runs
    the original model on a whole signal.
    """

    __jit_unused_properties__ = StreamingModule.__jit_unused_properties__ + ["layers"]

    def __init__(
        self,
        graph: fx.GraphModule,
        original: nn.Module,
        method: str,
        delay: int,
        ratio,
        buffer_multiple: int,
        receptive_field: int,
        in_channels: int,
        out_channels: int,
        dtype: torch.dtype,
    ) -> None:
        super().__init__()
        self.graph = graph
        # kept out of the module tree: TorchScript compiles the streaming graph only
        object.__setattr__(self, "original", original)
        self.method = method
        self.delay = delay
        self._set_ratio(ratio)
        self.buffer_multiple = buffer_multiple
        self.receptive_field = receptive_field
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.dtype_marker = torch.zeros(0, dtype=dtype)
        self.set_name(f"{type(getattr(original, 'model', original)).__name__}.{method}")

    @property
    def layers(self) -> List[StreamingModule]:
        """The streaming layers of the graph, in execution order."""
        return list(self.graph.streams)

    def _configure(self) -> None:
        """The graph's layers were configured at conversion; the model itself is always fed undelayed."""

    def _reset_children(self, indices: Optional[List[int]]) -> None:
        for layer in self.graph.streams:
            layer.reset(indices)

    def stream(self, x: Tensor) -> Tensor:
        return self.graph(x)

    @torch.jit.unused
    def offline(self, x: Tensor) -> Tensor:
        """The original model's method on a whole signal (not available in TorchScript)."""
        return self.original(x)
