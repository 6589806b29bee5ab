"""The streaming model that :func:`streamify.convert` returns: a streaming graph and its timing."""

from fractions import Fraction
from typing import Any, List, Optional, Sequence

import torch
import torch.fx as fx
from torch import Tensor, nn

from streamify.layers.base import StreamingError, StreamingModule


class MethodCall(nn.Module):
    """Exposes ``model.<method>`` as ``forward``: what a conversion captures, and a stream's offline reference.

    Shape:
        as ``model.<method>``: a whole signal ``[batch, channels, time]`` in.
    """

    def __init__(self, model: nn.Module, method: str) -> None:
        super().__init__()
        if not callable(getattr(model, method, None)):
            raise StreamingError(f"streamify: convert: the model has no method {method!r}")
        self.model = model
        self.method = method

    def forward(self, x: Tensor) -> Any:
        return getattr(self.model, self.method)(x)


class StreamingModel(StreamingModule):
    """A converted model: a streaming graph of streamify layers and the original's other ops.

    ``forward(x)`` takes a buffer ``[batch, in_channels, n]`` (``n`` a multiple of
    ``buffer_multiple``) and returns the next ``n / ratio`` frames of the model's
    output, which lags the offline output by ``delay`` frames. ``offline(x)`` runs
    the original model on a whole signal.

    Attributes set by the conversion (Python side; TorchScript leaves them out):
        input_ratios: the rate (input samples per frame) of the stream that feeds each streaming layer of
            ``graph.streams``, in order (for :func:`streamify.inspect`).
        layer_sources: the user's source line of each streaming layer (for the verification's messages).
        random_kept: whether the graph draws random numbers per buffer (``allow_random``).
        capture: which capture converted the model: ``"aten"`` (op level) or ``"fx"`` (the fx tracer).

    Shape:
        ``forward``: ``[batch, in_channels, n]`` -> ``[batch, out_channels, n / ratio]``.
    """

    __jit_unused_properties__ = StreamingModule.__jit_unused_properties__ + ["layers"]
    __jit_ignored_attributes__ = ["input_ratios", "layer_sources", "random_kept", "capture"]

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
        input_ratios: Sequence[Fraction] = (),
        layer_sources: Sequence[str] = (),
        random_kept: bool = False,
        capture: str = "",
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
        self.input_ratios: List[Fraction] = [Fraction(r) for r in input_ratios]
        self.layer_sources: List[str] = list(layer_sources)
        self.random_kept = bool(random_kept)
        self.capture = capture
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

    @torch.jit.export
    def advance(self, x: Tensor) -> Tensor:
        """One buffer, validated by the caller (see :meth:`StreamingModule.advance`): the graph's layers in order."""
        self._begin(x)
        y = self.graph(x)
        if self.is_root and self.delay > 0 and (self.out_warm_left > 0 or self.explicit_state):
            y = self._mask_output(y)
        return y

    def stream(self, x: Tensor) -> Tensor:
        return self.graph(x)

    @torch.jit.unused
    def offline(self, x: Tensor) -> Tensor:
        """The original model's method on a whole signal (not available in TorchScript)."""
        return self.original(x)
