"""Streaming layers placed into a graph being rewritten: what both of the converter's rewriters share.

Both rewriters (the op-level core :class:`streamify.convert.rewrite.Rewriter` and the fx tracer's
:class:`streamify.convert.builder.GraphRewriter`) build a new ``fx.Graph`` node by node. Where a node
becomes a streaming layer, :meth:`StreamEmitter.emit_stream` puts it in the graph (time moved last
around it) and folds the stream's timing through it with :mod:`streamify.layers.timeline`: the lead
guard in front, the layer's configuration, the outgoing delay, rate and receptive field, the buffer
multiple. Where time-varying tensors meet, :meth:`StreamEmitter.align` adds the delay lines.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch.fx as fx

from streamify.convert.timeinfo import TimeInfo
from streamify.layers.base import StreamingError, StreamingModule
from streamify.layers.shift import Delay
from streamify.layers.timeline import Fold, RatesDiffer, Timing, align, catch_up, lead_frames

Pairs = List[Tuple[fx.Node, TimeInfo]]


def timing_of(info: TimeInfo) -> Timing:
    """The timing part of a tensor's :class:`TimeInfo`."""
    return Timing(info.delay, info.ratio, info.field)


def with_timing(info: TimeInfo, timing: Timing) -> TimeInfo:
    """``info`` (its time axis) with ``timing``."""
    return TimeInfo(info.dim, timing.delay, timing.ratio, timing.field, info.folded)


class StreamEmitter:
    """The part of a graph rewriter that places streaming layers (see the module docstring).

    A subclass sets ``graph`` (the new ``fx.Graph``), ``env`` (old node -> new value), ``values`` (old
    node -> value on the example), ``current`` (the node being rewritten), and provides ``where``,
    ``fail`` and :meth:`layer_name`.

    Attributes:
        streams: the streaming layers placed, in order (the graph calls ``streams.<i>``).
        sources: the user's source line of each streaming layer, for error messages.
        input_ratios: model input samples per frame at each stream's input (for streamify.inspect).
        fold: the fold over every layer placed; ``fold.buffer_multiple`` is the model's.
    """

    graph: fx.Graph
    env: Dict[fx.Node, Any]
    values: Dict[fx.Node, Any]
    current: Optional[fx.Node]

    def _init_streams(self) -> None:
        self.streams: List[StreamingModule] = []
        self.sources: List[str] = []
        self.input_ratios: List[Fraction] = []
        self.fold = Fold()

    def where(self, node: fx.Node) -> str:
        raise NotImplementedError

    def fail(self, node: Optional[fx.Node], what: str, fix: str) -> StreamingError:
        raise NotImplementedError

    def layer_name(self, module: StreamingModule, name: Optional[str]) -> str:
        """The name a placed layer reports in errors (``name``: what the caller calls it)."""
        raise NotImplementedError

    def emit_stream(
        self, module: StreamingModule, x: Any, info: TimeInfo, ndim: int, name: Optional[str] = None
    ) -> Tuple[fx.Node, TimeInfo]:
        """Apply a streaming module to new-graph node ``x`` (``ndim`` axes) whose time axis is ``info.dim``.

        A stream of negative delay (after a pad) reaches only layers that take an early stream; any
        other layer first gets a delay line that brings it to delay 0 (:func:`lead_frames`).
        """
        if info.folded:
            raise self.fail(
                self.current,
                "applies a time layer to a tensor whose time axis is merged with the batch axis",
                "split time from the batch (reshape back) before the time layer",
            )
        lead = lead_frames(module, info.delay)
        if lead:
            x, info = self.emit_stream(Delay(lead), x, info, ndim, None if name is None else f"{name}.pre")
        module.is_root = False
        timing = self.fold.place(module, timing_of(info))
        module.set_name(self.layer_name(module, name))
        self.input_ratios.append(info.ratio)
        index = len(self.streams)
        self.streams.append(module)
        self.sources.append(self.where(self.current) if self.current is not None else "the model's input")
        moved = info.dim != ndim - 1
        if moved:
            x = self.graph.call_method("movedim", (x, info.dim, -1))
        y = self.graph.call_module(f"streams.{index}", (x,))
        if moved:
            y = self.graph.call_method("movedim", (y, -1, info.dim))
        return y, TimeInfo(info.dim, timing.delay, timing.ratio, timing.field)

    def emit_catch_up(self, x: Any, info: TimeInfo, ndim: int, name: str) -> Tuple[Any, TimeInfo]:
        """``x`` brought to delay 0 if it runs ahead of offline (the model's output after a trailing pad)."""
        frames = catch_up(info.delay)
        if frames:
            return self.emit_stream(Delay(frames), x, info, ndim, name)
        return x, info

    def align(self, node: fx.Node, pairs: Sequence[Tuple[fx.Node, TimeInfo]]) -> Tuple[Dict[fx.Node, Any], TimeInfo]:
        """Delay lines so that every time input of ``node`` has the largest delay (at least 0: ``node`` is
        not a window op); returns the replaced inputs and the common time info (the first input's axis)."""
        try:
            alignment = align([timing_of(info) for _, info in pairs])
        except RatesDiffer as error:
            raise self.fail(
                node,
                f"combines signals at different rates {sorted(str(r) for r in error.ratios)} (input samples per frame)",
                "resample them to one rate before combining",
            ) from None
        replaced: Dict[fx.Node, Any] = {}
        for (arg, info), frames in zip(pairs, alignment.lines):
            if frames and arg not in replaced:
                ndim = self.values[arg].dim()
                replaced[arg], _ = self.emit_stream(Delay(frames), self.env[arg], info, ndim, f"align.{node.name}")
        folded = any(info.folded for _, info in pairs)
        return replaced, with_timing(TimeInfo(pairs[0][1].dim, 0, Fraction(1), folded=folded), alignment.timing)
