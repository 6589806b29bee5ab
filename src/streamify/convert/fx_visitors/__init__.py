"""The fx tracer's rewriting rules, one module per op family, mixed into :class:`~streamify.convert.builder.GraphRewriter`.

``patterns`` (periodic masks), ``modules`` (module calls, opaque calls), ``windows`` (functional
convs, pads, pools, interpolation), ``slicing`` (indexing along time), ``layout`` (shapes, permutes,
views, reductions), ``combine`` (where time-varying tensors meet). The op-level rewriter's rules
are in :mod:`streamify.convert.rules`.
"""

from __future__ import annotations

from typing import Any, List


def leaves(structure: Any) -> List[Any]:
    """The items of nested lists, tuples and dicts, in order."""
    if isinstance(structure, (list, tuple)):
        out: List[Any] = []
        for item in structure:
            out += leaves(item)
        return out
    if isinstance(structure, dict):
        return leaves(list(structure.values()))
    return [structure]


def norm_dim(dim: int, ndim: int) -> int:
    """``dim`` counted from the front."""
    return dim + ndim if dim < 0 else dim
