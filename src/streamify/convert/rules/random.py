"""Random draws (``randn``, ``rand``, ``normal``, ``bernoulli``, ``randn_like``, ...): kept, drawn per buffer.

A draw shaped like a time-varying tensor (``randn_like(x)``, ``bernoulli(p)``) is drawn at run time like the
buffer's tensor. A draw sized from the signal (``torch.randn(B, 1, T)``, and what is computed from it with
constants) is drawn at run time at the buffer's batch size and length, read from the tensor it is
combined with. The streamed noise is new noise: verification replaces every draw by zeros, offline and
streamed alike (:mod:`streamify.convert.draws`), so the structure around the draws is still checked.
"""

from __future__ import annotations

from typing import Any, List

import torch
import torch.fx as fx
from torch import Tensor

from streamify.convert.rewrite import Pairs, Rewriter
from streamify.convert.rules import op_rule

aten = torch.ops.aten

RANDOM = (
    aten.randn, aten.rand, aten.randint, aten.normal, aten.bernoulli, aten.randn_like, aten.rand_like,
    aten.randint_like, aten.uniform, aten.exponential, aten.poisson,
)  # fmt: skip


@op_rule(*RANDOM, static=True)
def draw(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    """A draw that no time-varying tensor reaches: marked random (so is what is computed from it)."""
    rw.random.add(node)
    rw.info[node] = None


@op_rule(*RANDOM)
def draw_like(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    """A draw shaped like (or parametrized by) a time-varying tensor: drawn per buffer, frame by frame."""
    from streamify.convert.rules.combine import pointwise

    pointwise(rw, node, time_args)
    rw.random_kept = True


def emit_random(rw: Rewriter, node: fx.Node) -> Any:
    """A random static node drawn at run time, at the batch size and length of ``rw.time_ref``."""
    v, p = rw.values[node], rw.probe_values[node]
    if not isinstance(v, Tensor) or not isinstance(p, Tensor) or v.dim() != p.dim():
        raise rw.fail(
            node,
            "draws random numbers in a way the converter cannot size per buffer",
            "draw like the signal (randn_like)",
        )
    rw.random_kept = True
    if node.target in RANDOM or getattr(node.target, "overloadpacket", None) in RANDOM:
        index = next((i for i, a in enumerate(node.args) if isinstance(a, (list, tuple)) and len(a) == v.dim()), None)
        if index is not None:
            args = list(node.args)
            args[index] = _sizes(rw, node, v, p)
            return rw.copy(node, args=tuple(args))
    return rw.copy(node)


def _sizes(rw: Rewriter, node: fx.Node, v: Tensor, p: Tensor) -> List[Any]:
    b, pb = rw.example.size(0), rw.probe.size(0)
    sizes: List[Any] = []
    for k in range(v.dim()):
        a, c = v.size(k), p.size(k)
        if a == c:
            sizes.append(a)
        elif k == 0 and a == b and c == pb:
            sizes.append(rw.batch())
        elif rw.time_ref is not None and a == rw.time_ref[2]:
            sizes.append(rw.graph.call_method("size", (rw.time_ref[0], rw.time_ref[1])))
        else:
            raise rw.fail(
                node,
                "draws noise sized from the signal but not as long as the tensor it is combined with",
                "draw like the signal (randn_like)",
            )
    return sizes
