"""The fx tracer's rules for indexing along time.

The methods are mixed into :class:`streamify.convert.builder.GraphRewriter`, whose helpers they use.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

import torch.fx as fx
from torch import Tensor

from streamify.convert.emit import Pairs
from streamify.convert.fx_visitors import norm_dim
from streamify.convert.timeinfo import TimeInfo
from streamify.layers.shift import Crop

if TYPE_CHECKING:
    from streamify.convert.builder import GraphRewriter


class SliceVisitors:
    """Slices and narrows along time become crops from a constant start; other indices keep time whole."""

    def visit_getitem(self: GraphRewriter, node: fx.Node, time_args: Pairs) -> None:
        container, index = node.args
        structure = self.env[container]
        if (
            isinstance(structure, tuple)
            and isinstance(self.info[container], tuple)
            and not isinstance(structure, fx.Node)
        ):
            # result of a recurrent layer: (output, state)
            chosen = structure[index]
            if chosen is None and not node.users:
                self.env[node] = None
                self.info[node] = None
                return
            if chosen is None:
                raise self.fail(node, "reads the final state of a recurrent layer", "use only its output sequence")
            self.env[node] = chosen
            self.info[node] = self.info[container][index]
            return
        info = self.info[container]
        if not isinstance(info, TimeInfo):  # tuple/list produced by a split: pick the item
            self.env[node] = self.copy_node(node)
            self.info[node] = info[self.value(index)] if isinstance(info, (list, tuple)) else None
            return
        x = self.values[container]
        items = list(index) if isinstance(index, tuple) else [index]
        dims = self._index_dims(node, x.dim(), items)
        new_items = list(items)
        crop = None
        out_dim = None
        position = 0
        consumed = sum(1 for it in items if it is not None and it is not Ellipsis)
        for k, item in enumerate(items):
            if item is None:
                position += 1
                continue
            if item is Ellipsis:
                position += x.dim() - consumed
                continue
            if dims[k] == info.dim:
                if not isinstance(item, slice):
                    raise self.fail(node, "picks single time frames", "slice a range of frames instead")
                crop = self._time_slice(node, x.size(info.dim), item, k)
                new_items[k] = slice(None)
                out_dim = position
            if isinstance(item, slice):
                position += 1
        out_value = self.values[node]
        if out_dim is None:
            out_dim = self._locate_time(node, x, out_value, info)
        new_index = tuple(new_items) if isinstance(index, tuple) else new_items[0]
        remapped = fx.node.map_arg(new_index, lambda n: self.env[n])
        y = self.graph.call_function(operator.getitem, (self.env[container], remapped))
        out = info.moved(out_dim)
        if crop is not None and crop != (0, 0):
            y, out = self.emit_stream(Crop(*crop), y, out, out_value.dim(), node.name)
        self.env[node] = y
        self.info[node] = out

    def _index_dims(self: GraphRewriter, node: fx.Node, ndim: int, items: List[Any]) -> List[Optional[int]]:
        """Input dimension indexed by each item of an index tuple (None for None items)."""
        consumed = sum(1 for it in items if it is not None and it is not Ellipsis)
        dims: List[Optional[int]] = []
        d = 0
        for item in items:
            if item is None:
                dims.append(None)
            elif item is Ellipsis:
                dims.append(None)
                d += ndim - consumed
            else:
                if isinstance(self.value(item), Tensor):
                    raise self.fail(node, "indexes with a tensor", "slice time with integers")
                dims.append(d)
                d += 1
        return dims

    def _locate_time(self: GraphRewriter, node: fx.Node, x: Tensor, out: Tensor, info: TimeInfo) -> int:
        """Time axis of an indexing result that kept the time axis whole (found by size)."""
        length = x.size(info.dim)
        candidates = [d for d in range(out.dim()) if out.size(d) == length]
        if len(candidates) != 1:
            raise self.fail(node, "indexes in a way that hides where the time axis goes", "slice time explicitly")
        return candidates[0]

    def _time_slice(self: GraphRewriter, node: fx.Node, length: int, item: slice, k: int) -> Tuple[int, int]:
        value = self.value(item)
        start, stop, step = value.start, value.stop, value.step
        if step not in (None, 1):
            raise self.fail(node, "takes every n-th frame", "decimate with a strided conv or pool")
        start_n, stop_n, _ = slice(start, stop).indices(length)
        raw = node.args[1]
        raw_item = raw[k] if isinstance(raw, tuple) else raw
        start_node = raw_item.start if isinstance(raw_item, slice) else None
        if isinstance(start_node, fx.Node) and self.length_dependent(start_node):
            raise self.fail(
                node, "cuts the start of the signal by an amount that depends on its length", "crop by a constant"
            )
        if isinstance(start, int) and start < 0:
            raise self.fail(node, "keeps only the end of the signal", "crop from the start by a constant")
        return start_n, max(length - stop_n, 0)

    def visit_narrow(self: GraphRewriter, node: fx.Node, time_args: Pairs) -> None:
        arg, info = self._single_time_input(node, time_args, "narrow")
        x = self.values[arg]
        dim = norm_dim(self._const(node, 1, "dim", None), x.dim())
        if dim != info.dim:
            self.env[node] = self.copy_node(node)
            self.info[node] = info
            return
        start = self._const(node, 2, "start", None)
        length = self._const(node, 3, "length", None)
        start_arg = node.args[2] if len(node.args) > 2 else node.kwargs.get("start")
        if isinstance(start_arg, fx.Node) and self.length_dependent(start_arg):
            raise self.fail(
                node, "cuts the start of the signal by an amount that depends on its length", "crop by a constant"
            )
        crop = Crop(start, x.size(dim) - start - length)
        self._emit_unary(node, crop, arg, info)
