"""Static values (no time-varying tensor reaches them) as they enter the streaming graph.

A static value that is the same for the example and the probe is a constant. One that differs only
along the batch axis, the same for every batch item, is that item expanded to the run-time batch size.
One that differs along one axis only and is constant along it (``emb.repeat(1, 1, x.shape[-1])``: a
constant stretched to the signal's length) enters as one frame, which broadcasts against the signal.
Anything else computes with the signal's length or batch size, and is refused.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.fx as fx
from torch import Tensor

from streamify.convert.rewrite import Rewriter, _same

#: static nodes stretched along the signal (their one-frame constant); consumers may expand them
STRETCHED = "stretched"


def _constant_along(v: Tensor, k: int) -> bool:
    return v.size(k) > 0 and bool((v == v.narrow(k, 0, 1)).all())


def _differing_axes(v: Tensor, p: Tensor) -> Optional[list]:
    if v.dim() != p.dim():
        return None
    return [k for k in range(v.dim()) if v.size(k) != p.size(k)]


def materialize(rw: Rewriter, node: fx.Node) -> Any:
    if node in rw.env:
        return rw.env[node]
    v, p = rw.values[node], rw.probe_values.get(node)
    same = isinstance(v, Tensor) and isinstance(p, Tensor) and p.shape == v.shape and bool(torch.equal(p, v))
    if node in rw.random and not same:  # (a draw overwritten by constants is the same in both runs)
        from streamify.convert.rules.random import emit_random

        rw.env[node] = emit_random(rw, node)
        return rw.env[node]
    if not isinstance(v, Tensor):
        if not _same(v, p):
            raise rw.fail(node, "computes with the signal length or batch size", "use constants", fallback=True)
        out: Any = v
    elif same:
        out = rw.constant(v)
    else:
        out = _varying(rw, node, v, p)
    rw.env[node] = out
    return out


def _varying(rw: Rewriter, node: fx.Node, v: Tensor, p: Any) -> fx.Node:
    b, pb = rw.example.size(0), rw.probe.size(0)
    axes = _differing_axes(v, p) if isinstance(p, Tensor) else None
    if axes and all(_constant_along(v, k) and _constant_along(p, k) for k in axes):
        first, probe_first = v, p
        for k in axes:
            first, probe_first = first.narrow(k, 0, 1), probe_first.narrow(k, 0, 1)
        batch = 0 in axes and v.size(0) == b and p.size(0) == pb
        stretched = [k for k in axes if k != 0 or not batch]
        if torch.equal(first, probe_first) and len(stretched) <= 1:
            y = rw.constant(first)
            if batch:  # made per batch item: expanded to the run-time batch size
                y = rw.graph.call_function(torch.ops.aten.expand, (y, [rw.batch()] + [-1] * (v.dim() - 1)))
            if stretched:  # stretched along the signal: one frame broadcasts
                y.meta[STRETCHED] = stretched[0]
            return y
    raise rw.fail(
        node,
        "computes with a tensor made from the signal's length or batch size (it differs between a signal of "
        f"{tuple(rw.example.shape)} and one of {tuple(rw.probe.shape)}, and is not a constant stretched along time)",
        "use only constants and per-frame values",
    )


__all__ = ["STRETCHED", "materialize", "_same"]
