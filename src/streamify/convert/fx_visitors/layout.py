"""The fx tracer's rules for shapes and layouts.

The methods are mixed into :class:`streamify.convert.builder.GraphRewriter`, whose helpers they use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import Tensor

from streamify.convert.emit import Pairs
from streamify.convert.fx_visitors import norm_dim
from streamify.convert.timeinfo import broadcast_dim, view_time_dim

if TYPE_CHECKING:
    from streamify.convert.builder import GraphRewriter


class LayoutVisitors:
    """Sizes, permutes, views, splits over other axes, reductions and per-channel ops: the time axis followed."""

    def visit_size(self: GraphRewriter, node: fx.Node, time_args: Pairs) -> None:
        self.env[node] = self.copy_node(node)
        self.info[node] = None

    def visit_permute(self: GraphRewriter, node: fx.Node, time_args: Pairs) -> None:
        """permute, transpose, movedim, swapaxes, mT: follow the time axis on a meta tensor of distinct sizes."""
        arg, info = time_args[0]
        ndim = self.values[arg].dim()
        sizes = [2 + d for d in range(ndim)]
        probe = torch.empty(sizes, device="meta")
        rest = [self.value(a) for a in node.args[1:]]
        kwargs = self.value(dict(node.kwargs))
        if node.op == "call_method":
            moved = getattr(probe, node.target) if node.target == "mT" else getattr(probe, node.target)(*rest, **kwargs)
        else:
            moved = node.target(probe, *rest, **kwargs)
        self.env[node] = self.copy_node(node)
        self.info[node] = info.moved(list(moved.shape).index(sizes[info.dim]))

    def visit_view(self: GraphRewriter, node: fx.Node, time_args: Pairs) -> None:
        arg, info = time_args[0]
        if len(time_args) > 1:
            raise self.fail(node, "reshapes with the shape of another time tensor", "reshape with explicit sizes")
        x = self.values[arg]
        y = self.values[node]
        new_dim = view_time_dim(list(x.shape), list(y.shape), info.dim)
        probe_dim = view_time_dim(list(self.probe_values[arg].shape), list(self.probe_values[node].shape), info.dim)
        if new_dim is None or probe_dim != new_dim:
            raise self.fail(node, "merges or splits the time axis with another axis", "keep time as an axis of its own")
        self.env[node] = self.copy_node(node)
        self.info[node] = info.moved(new_dim)

    def visit_split(self: GraphRewriter, node: fx.Node, time_args: Pairs) -> None:
        arg, info = self._single_time_input(node, time_args, "a split")
        x = self.values[arg]
        name = node.target if isinstance(node.target, str) else node.target.__name__
        default = 0
        dim = self._const(node, 2 if name != "unbind" else 1, "dim", default)
        dim = norm_dim(dim, x.dim())
        if dim == info.dim:
            raise self.fail(node, "splits along time", "split along channels")
        out_dim = info.dim - 1 if name == "unbind" and dim < info.dim else info.dim
        self.env[node] = self.copy_node(node)
        self.info[node] = tuple(info.moved(out_dim) for _ in self.values[node])

    def visit_dim_op(self: GraphRewriter, node: fx.Node, time_args: Pairs) -> None:
        arg, info = self._single_time_input(node, time_args, "a reduction")
        x = self.values[arg]
        name = node.target if isinstance(node.target, str) else node.target.__name__
        if node.target is F.normalize:
            dim = self._const(node, 2, "dim", 1)
        elif node.target is F.glu:
            dim = self._const(node, 1, "dim", -1)
        elif node.target is torch.linalg.vector_norm or name == "norm":
            dim = self._const(node, 2, "dim", None)
        else:
            dim = self._const(node, 1, "dim", None)
        dims = list(range(x.dim())) if dim is None else [dim] if isinstance(dim, int) else list(dim)
        dims = [norm_dim(d, x.dim()) for d in dims]
        if info.dim in dims:
            raise self.fail(
                node, "reduces or normalises over the time axis", "reduce over channels, or use a windowed op"
            )
        out = self.values[node]
        first = out[0] if isinstance(out, tuple) else out
        if isinstance(first, Tensor) and first.dim() == x.dim():
            new_dim = info.dim
        else:
            new_dim = info.dim - sum(1 for d in dims if d < info.dim)
        self.env[node] = self.copy_node(node)
        moved = info.moved(new_dim)
        self.info[node] = tuple(moved for _ in out) if isinstance(out, tuple) else moved

    def visit_last_dim_op(self: GraphRewriter, node: fx.Node, time_args: Pairs) -> None:
        """Ops that act on the last axis (linear, matmul, layer norm) or on channels (batch norm)."""
        arg, info = time_args[0]
        x = self.values[arg]
        out = self.values[node]
        if node.target is F.batch_norm:
            training = self._const(node, 5, "training", False)
            if training or info.dim == 1:
                raise self.fail(node, "normalises with batch statistics over time", "convert the model in eval mode")
        elif node.target is F.layer_norm:
            shape = self._const(node, 1, "normalized_shape", None)
            if info.dim >= x.dim() - len(shape):
                raise self.fail(node, "normalises over the time axis", "normalise over channels (move them last first)")
        else:
            if len(time_args) > 1 or info.dim == x.dim() - 1 or (node.args[0] is not arg):
                raise self.fail(node, "multiplies along the time axis", "apply it over channels")
        self.env[node] = self.copy_node(node)
        self.info[node] = info.moved(broadcast_dim(info, x.dim(), out.dim()))
