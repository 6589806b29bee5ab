"""The fx tracer's rule for periodic patterns.

The methods are mixed into :class:`streamify.convert.builder.GraphRewriter`, whose helpers they use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.fx as fx
from torch import Tensor

from streamify.convert.emit import Pairs
from streamify.convert.mutation import mutates
from streamify.convert.trial_runs import run_graph
from streamify.layers.periodic import Periodic

if TYPE_CHECKING:
    from streamify.convert.builder import GraphRewriter


class PatternVisitors:
    """Tensors written in place, periodic in time and independent of the signal (masks): :class:`Periodic` layers."""

    def _mutated_in_place(self: GraphRewriter, node: fx.Node) -> bool:
        return any(mutates(user) and user.args and user.args[0] is node for user in node.users)

    def _writes_pattern(self: GraphRewriter, node: fx.Node) -> bool:
        return mutates(node) and bool(node.args) and node.args[0] in self.patterns

    def _signal_independent(self: GraphRewriter, node: fx.Node) -> bool:
        """Whether the node's value stays the same for another signal of the example's shape."""
        if self.alt_values is None:
            generator = torch.Generator().manual_seed(4321)
            other = torch.randn(self.example.shape, generator=generator, dtype=torch.float64).to(self.example.dtype)
            self.alt_values = run_graph(self.gm, other, self.example, self.where, self.gm, self.gm)
        a, b = self.values.get(node), self.alt_values.get(node)
        return isinstance(a, Tensor) and isinstance(b, Tensor) and a.shape == b.shape and torch.equal(a, b)

    def visit_pattern(self: GraphRewriter, node: fx.Node, time_args: Pairs) -> bool:
        """A tensor written in place that does not depend on the signal's values and is periodic along time
        (``mask = ones_like(x); mask[..., 1::2, ::2] = -1``) becomes a :class:`Periodic` layer; returns False
        (the node is then treated as usual) for anything else."""
        arg, info = time_args[0]
        value, probe = self.values[node], self.probe_values.get(node)
        ref = self.values[arg]
        if not isinstance(value, Tensor) or not isinstance(probe, Tensor) or value.dim() != ref.dim():
            return False
        if value.shape[info.dim] != ref.shape[info.dim] or not self._signal_independent(node):
            return False
        v, p = value.movedim(info.dim, -1), probe.movedim(info.dim, -1)
        if v.size(0) != ref.size(0) or not bool((v == v[:1]).all()) or not bool((p == p[:1]).all()):
            return False  # not batch-major or not the same for every batch item
        length = v.size(-1)
        period = next((k for k in range(1, min(64, length // 2) + 1) if torch.equal(v[..., k:], v[..., :-k])), None)
        if period is None:
            return False
        base = v[0, ..., :period]
        index = torch.arange(p.size(-1)) % period
        if p.shape[1:-1] != v.shape[1:-1] or not torch.equal(p[0], base.index_select(-1, index)):
            return False
        self.patterns.add(node)
        y, out = self.emit_stream(Periodic(base), self.env[arg], info, ref.dim(), node.name)
        self.env[node] = y
        self.info[node] = out
        return True
