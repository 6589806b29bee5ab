"""Tensors made from the signal's shape only (``torch.ones_like(x)`` written in place), periodic along time.

``ones_like`` / ``zeros_like`` / ``full_like`` / ``empty_like`` of a time-varying tensor start a *pattern*:
what follows from patterns and constants alone (slices, fills, scatters) is computed at conversion. Where a
pattern meets the signal, it becomes a :class:`~streamify.layers.periodic.Periodic` layer fed by the tensor
it was made like (same delay), which emits one period of it in phase with the offline frame index:
acids-rave's PQMF multiplies its bands by ``mask = ones_like(x); mask[..., 1::2, ::2] = -1``. Refused: a
pattern that is not periodic along time (within 64 frames) or differs between batch items.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx as fx

from streamify.convert.rewrite import Pairs, Rewriter
from streamify.convert.rules import op_rule
from streamify.convert.timeinfo import TimeInfo
from streamify.layers.periodic import Periodic

aten = torch.ops.aten


@dataclass(frozen=True)
class Pattern:
    """A tensor made from the shape of ``source`` (whose time info is ``info``) and constants only."""

    source: fx.Node
    info: TimeInfo


@op_rule(aten.ones_like, aten.zeros_like, aten.full_like, aten.empty_like, aten.new_ones, aten.new_zeros, aten.new_full)
def like(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    arg, info = time_args[0]
    rw.info[node] = Pattern(arg, info)


def realize(rw: Rewriter, node: fx.Node) -> None:
    """Turn pattern ``node`` into a :class:`Periodic` stream in phase with its source."""
    pattern = rw.info[node]
    value, probe = rw.values[node], rw.probe_values[node]
    source, d = rw.values[pattern.source], pattern.info.dim
    psource = rw.probe_values[pattern.source]

    def refuse(why: str):
        return rw.fail(
            node,
            f"combines the signal with a tensor made from its shape that {why}",
            "compute it from per-frame values, or make it periodic along time",
        )

    if value.dim() != source.dim() or value.size(d) != source.size(d) or probe.size(d) != psource.size(d):
        raise refuse("does not keep the time axis of the tensor it was made like")
    v, p = value.movedim(d, -1), probe.movedim(d, -1)
    if not bool((v == v[:1]).all()) or not bool((p == p[:1]).all()) or p.shape[1:-1] != v.shape[1:-1]:
        raise refuse("differs between batch items")
    length = v.size(-1)
    period = next((k for k in range(1, min(64, length // 2) + 1) if torch.equal(v[..., k:], v[..., :-k])), None)
    if period is None:
        raise refuse("is not periodic along time")
    base = v[0, ..., :period]
    if not torch.equal(p[0], base.index_select(-1, torch.arange(p.size(-1)) % period)):
        raise refuse("is not periodic along time")
    y, out = rw.emit_stream(Periodic(base), rw.env[pattern.source], pattern.info, source.dim())
    if value.dim() - 1 != d:  # Periodic puts time last; the pattern has it at d
        y = rw.graph.call_method("movedim", (y, -1, d))
        out = out.moved(d)
    rw.env[node], rw.info[node] = y, out
