"""The fx tracer's rules where time-varying tensors meet.

The methods are mixed into :class:`streamify.convert.builder.GraphRewriter`, whose helpers they use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Tuple

import torch
import torch.fx as fx
from torch import Tensor

from streamify.convert.emit import Pairs
from streamify.convert.fx_visitors import norm_dim
from streamify.convert.timeinfo import broadcast_dim
from streamify.layers.shift import Pad

if TYPE_CHECKING:
    from streamify.convert.builder import GraphRewriter


class CombineVisitors:
    """Elementwise ops and joins over other axes (aligned by delay lines); concatenations along time that are pads."""

    def visit_elementwise(self: GraphRewriter, node: fx.Node, time_args: Pairs) -> None:
        out = self.values[node]
        if not isinstance(out, Tensor):
            self.env[node] = self.copy_node(node)
            self.info[node] = None
            return
        self._check_static_operands(node, time_args, out)
        for arg in node.all_input_nodes:
            if not isinstance(self.values[arg], Tensor) and self.length_dependent(arg):
                raise self.fail(node, "computes with the signal length", "use only constants and per-frame values")
        replaced, aligned = self.align(node, time_args)
        first_arg, first_info = time_args[0]
        dim = broadcast_dim(first_info, self.values[first_arg].dim(), out.dim())
        for arg, info in time_args[1:]:
            if broadcast_dim(info, self.values[arg].dim(), out.dim()) != dim:
                raise self.fail(
                    node, "combines tensors whose time axes do not line up", "permute them to one layout first"
                )
        self.env[node] = self.copy_node(node, replaced)
        self.info[node] = aligned.moved(dim)

    def _check_static_operands(self: GraphRewriter, node: fx.Node, time_args: Pairs, out: Tensor) -> None:
        """A constant operand must not extend along time (e.g. a positional table of the signal's length)."""
        first_arg, first_info = time_args[0]
        dim = broadcast_dim(first_info, self.values[first_arg].dim(), out.dim())
        timed = {a for a, _ in time_args}
        for arg in node.all_input_nodes:
            if arg in timed:
                continue
            value = self.values[arg]
            probe = self.probe_values.get(arg)
            if (
                isinstance(value, Tensor)
                and isinstance(probe, Tensor)
                and probe.shape == value.shape
                and not self.allow_random
                and not torch.equal(probe, value)
            ):
                raise self.fail(
                    node,
                    "computes with a tensor made from the signal's length or batch size (it differs between a signal "
                    f"of {self.example_shape} and one of {self.probe_shape})",
                    "use only constants and per-frame values",
                )
            if isinstance(value, Tensor) and value.dim() > 0:
                k = dim - (out.dim() - value.dim())
                if 0 <= k < value.dim() and value.size(k) != 1:
                    if self.allow_random and self._is_random(arg) and self._follows_length(arg, k, node, dim):
                        continue  # noise drawn at the signal's length (e.g. randn(B, 1, T)): drawn per buffer
                    raise self.fail(
                        node, "combines the signal with a constant that extends along time", "make it per frame"
                    )

    def _follows_length(self: GraphRewriter, arg: fx.Node, k: int, node: fx.Node, dim: int) -> bool:
        """Whether axis ``k`` of ``arg`` is as long as the time axis ``dim`` of ``node``, for both signal lengths."""
        value, probe = self.values[arg], self.probe_values.get(arg)
        out, probe_out = self.values[node], self.probe_values.get(node)
        if not all(isinstance(t, Tensor) for t in (probe, out, probe_out)):
            return False
        return value.size(k) == out.size(dim) and probe.size(k) == probe_out.size(dim) != out.size(dim)

    def visit_join(self: GraphRewriter, node: fx.Node, time_args: Pairs) -> None:
        out = self.values[node]
        tensors = self.value(node.args[0])
        dim = self._const(node, 1, "dim", 0)
        first_arg, first_info = time_args[0]
        in_ndim = self.values[first_arg].dim()
        is_stack = node.target is torch.stack
        if not is_stack and norm_dim(dim, in_ndim) == first_info.dim:
            if self._join_as_pad(node, time_args):
                return
            raise self.fail(
                node, "concatenates along time", "concatenate along channels, or stream the parts separately"
            )
        if len(time_args) != len([t for t in tensors if isinstance(t, Tensor)]):
            raise self.fail(
                node, "joins the signal with constant tensors", "broadcast constants in an elementwise op instead"
            )
        replaced, aligned = self.align(node, time_args)
        time_dim = first_info.dim
        if is_stack and norm_dim(dim, in_ndim + 1) <= time_dim:
            time_dim += 1
        if len({info.dim for _, info in time_args}) > 1:
            raise self.fail(node, "joins tensors whose time axes differ", "permute them to one layout first")
        self.env[node] = self.copy_node(node, replaced)
        self.info[node] = aligned.moved(time_dim)
        del out

    def _join_as_pad(self: GraphRewriter, node: fx.Node, time_args: Pairs) -> bool:
        """A concatenation along time of one signal with constant blocks (``torch.cat([zeros, x], -1)``,
        a hand-written pad) becomes constant pads; returns False if it is not one."""
        parts = node.args[0]
        if len(time_args) != 1 or not isinstance(parts, (list, tuple)):
            return False
        arg, info = time_args[0]
        if sum(1 for p in parts if p is arg) != 1:
            return False
        x = self.values[arg]
        sides: List[List[Tuple[int, float]]] = [[], []]
        side = 0
        for part in parts:
            if part is arg:
                side = 1
                continue
            value = self.value(part)
            probe = fx.node.map_arg(part, lambda n: self.probe_values[n])
            if not isinstance(value, Tensor) or not isinstance(probe, Tensor) or value.dim() != x.dim():
                return False
            length = value.size(info.dim)
            if probe.size(info.dim) != length:  # a block as long as the signal is not a pad
                return False
            if length == 0:
                continue
            first = value.flatten()[0]
            if not bool((value == first).all()):
                return False
            sides[side].append((length, float(first)))
        y, out = self.env[arg], info
        for side_index, blocks in enumerate(sides):
            for length, fill in reversed(blocks) if side_index == 0 else blocks:  # innermost first
                left, right = (length, 0) if side_index == 0 else (0, length)
                y, out = self.emit_stream(Pad(left, right, "constant", fill), y, out, x.dim(), node.name)
        self.env[node] = y
        self.info[node] = out
        return True
