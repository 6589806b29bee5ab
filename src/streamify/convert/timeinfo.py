"""What the converter knows about each tensor of a captured graph: where its time axis is and how it streams."""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Optional, Sequence


@dataclass(frozen=True)
class TimeInfo:
    """A tensor that varies along time.

    Attributes:
        dim: index of the time axis (non-negative).
        delay: frames by which the streamed tensor lags the offline one.
        ratio: model input samples per frame of this tensor.
        field: receptive field in model input samples (None: unbounded, e.g. after a recurrence).
        folded: the time axis is merged with the batch axis (``[T, B, C] -> [T*B, C]`` around per-frame
            layers): per-frame ops only, until it is split back.
    """

    dim: int
    delay: int
    ratio: Fraction
    field: Optional[Fraction] = Fraction(1)
    folded: bool = False

    def moved(self, dim: int) -> TimeInfo:
        return replace(self, dim=dim)


def broadcast_dim(info: TimeInfo, in_ndim: int, out_ndim: int) -> int:
    """Time axis of an elementwise result: broadcasting aligns shapes on the right."""
    return out_ndim - (in_ndim - info.dim)


def view_time_dim(in_shape: Sequence[int], out_shape: Sequence[int], dim: int) -> Optional[int]:
    """Time axis after a view/reshape/flatten/squeeze, or None if the op merges or splits it.

    For a contiguous reinterpretation, the time axis survives as output axis ``j`` when
    that axis has the same size and the same product of sizes before it.
    """
    prefix = 1
    for size in in_shape[:dim]:
        prefix *= size
    length = in_shape[dim]
    running = 1
    for j, size in enumerate(out_shape):
        if running == prefix and size == length:
            suffix_in = 1
            for s in in_shape[dim + 1 :]:
                suffix_in *= s
            suffix_out = 1
            for s in out_shape[j + 1 :]:
                suffix_out *= s
            if suffix_in == suffix_out:
                return j
        running *= size
    return None
