"""Layout ops: the time axis followed through views, permutes, slices and splits, and folded into or out of
other axes.

* ``permute``, ``transpose``, ``unsqueeze``, ``squeeze``, ``clone``, casts: kept; time found again by size.
* ``view`` / ``reshape`` keeping time as an axis of its own: kept, with the time size read at run time.
* **Time split into (T/M, M)**, time the slow index (a 1-D pixel unshuffle, acids-rave's polyphase PQMF):
  the new time axis runs M times slower (rate x M), a buffer holds a multiple of M frames, and a delay line
  first brings the delay to a multiple of M, so that each group of M frames is the one offline groups.
  **Merged back** ((T, M) -> T*M, time the slow index: a pixel shuffle, ``CachedPQMF.inverse``): rate / M,
  delay x M. Refused: time as the fast index (interleaved with a constant axis), time merged with batch.
* A slice of time becomes :class:`~streamify.layers.Crop` (its start is delay; its end is irrelevant to a
  stream). Refused: picking single frames, reversing or rolling time, writing into a stretch of time,
  splitting along time.
"""

from __future__ import annotations

import operator
from typing import Any, List, Optional, Tuple

import torch
import torch.fx as fx

from streamify.convert.emit import timing_of, with_timing
from streamify.convert.rewrite import Pairs, Rewriter, norm_dim
from streamify.convert.rules import op_rule
from streamify.convert.timeinfo import TimeInfo
from streamify.layers.framing import Frame
from streamify.layers.overlap_add import OverlapAddFrames
from streamify.layers.shift import Crop, Delay
from streamify.layers.timeline import grouped, in_phase

aten = torch.ops.aten
_MARK = 10007  # a size no real axis has: where it lands is where time went


def _prod(xs: List[int]) -> int:
    out = 1
    for x in xs:
        out *= x
    return out


def _follow(rw: Rewriter, node: fx.Node, arg: fx.Node, info: TimeInfo) -> int:
    """The time axis of ``node``'s result: the op run on a meta tensor whose time axis has a unique size."""
    shape = list(rw.values[arg].shape)
    shape[info.dim] = _MARK
    meta = torch.empty(shape, device="meta")
    args = [meta] + [rw.arg(node, i, "") for i in range(1, len(node.args))]
    out = node.target(*args, **{k: rw.arg(node, 0, k) for k in node.kwargs})
    sizes = list(out.shape)
    if sizes.count(_MARK) != 1:
        raise rw.fail(node, "hides where the time axis goes", "keep time as an axis of its own")
    return sizes.index(_MARK)


@op_rule(
    aten.permute,
    aten.transpose,
    aten.t,
    aten.unsqueeze,
    aten.squeeze,
    aten.movedim,
    aten.numpy_T,
)
def permute(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    arg, info = time_args[0]
    rw.env[node] = rw.copy(node)
    rw.info[node] = info.moved(_follow(rw, node, arg, info))


@op_rule(aten.clone, aten.contiguous, aten.alias, aten.detach, aten.lift_fresh_copy, aten._to_copy, aten.to)
def same_layout(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    rw.env[node], rw.info[node] = rw.copy(node), time_args[0][1]


def _size_entries(rw: Rewriter, node: fx.Node, out: List[int], probe: List[int], time: Optional[int]) -> List[Any]:
    """Sizes for a run-time view: time -1, batch-made sizes from the run-time batch, the rest constant."""
    b, pb = rw.example.size(0), rw.probe.size(0)
    sizes: List[Any] = []
    for k, (a, p) in enumerate(zip(out, probe)):
        if k == time:
            sizes.append(-1)
        elif a == p:
            sizes.append(a)
        elif a % b == 0 and p == a // b * pb:
            sizes.append(rw.batch() if a == b else rw.graph.call_function(operator.mul, (rw.batch(), a // b)))
        else:
            raise rw.fail(
                node, "reshapes to a size made from the signal length", "keep time as an axis of its own", fallback=True
            )
    return sizes


def _fold(x: List[int], y: List[int], d: int) -> Optional[Tuple[str, int, int]]:
    """How a view maps time axis ``d`` of shape ``x`` into shape ``y``: ("keep"|"split"|"merge"|"fast", j, M)."""
    prefix = _prod(x[:d])
    running = 1
    for j, size in enumerate(y):
        if running == prefix and not (size == 1 and x[d] != 1):
            if size == x[d]:
                return ("keep", j, 1)
            if size < x[d]:
                for r in range(j + 1, len(y) + 1):
                    if _prod(y[j:r]) == x[d] and r > j + 1:
                        return ("split", j, _prod(y[j + 1 : r]))
                return None
            for r in range(d + 1, len(x) + 1):
                if _prod(x[d:r]) == size and r > d + 1:
                    return ("merge", j, _prod(x[d + 1 : r]))
            return None
        if running > prefix:
            return ("fast", j - 1, 0)
        running *= size
    return None


@op_rule(aten.view, aten._unsafe_view, aten.reshape)
def view(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    arg, info = time_args[0]
    x, y = list(rw.values[arg].shape), list(rw.values[node].shape)
    px, py = list(rw.probe_values[arg].shape), list(rw.probe_values[node].shape)
    folded = _batch_fold(rw, x, px, y, py, info)
    if folded is not None:
        rw.env[node] = rw.graph.call_function(aten.reshape, (rw.env[arg], _size_entries(rw, node, y, py, folded.dim)))
        rw.info[node] = folded
        return
    if info.folded:
        raise rw.fail(node, "reshapes time merged with the batch axis other than back", "split time from the batch")
    found, probe = _fold(x, y, info.dim), _fold(px, py, info.dim)
    if found is None or found[0] == "fast" or probe != found:
        raise rw.fail(
            node,
            f"merges or splits the time axis with a preceding axis (shape {tuple(x)} -> {tuple(y)}, time on axis "
            f"{info.dim}): time would become the fast index, and a frame would need the whole signal",
            "keep time as an axis of its own, or as the slow index of a fold (reshape [B, C, T] -> [B, C, T/M, M])",
        )
    kind, j, m = found
    source = rw.env[arg]
    if kind == "split":
        lag = in_phase(info.delay, m)  # groups in phase with offline
        if lag:
            source, info = rw.emit_stream(Delay(lag), source, info, len(x))
        rw.fold.require(info.ratio, m)
        out = with_timing(info.moved(j), grouped(timing_of(info), m, m))
    elif kind == "merge":
        out = TimeInfo(j, info.delay * m, info.ratio / m, info.field)
    else:
        out = info.moved(j)
    sizes = _size_entries(rw, node, y, py, j)
    rw.env[node] = rw.graph.call_function(aten.reshape, (source, sizes))
    rw.info[node] = out


def _batch_fold(rw: Rewriter, x: List[int], px: List[int], y: List[int], py: List[int], info: TimeInfo):
    """Time merged with the adjacent batch axis (``[T, B, C] -> [T*B, C]``, either order), or split back:
    read on the probe, whose batch is not 1. The result keeps the delay and rate (None: neither)."""
    b, pb, d = rw.example.size(0), rw.probe.size(0), info.dim
    if not info.folded and len(py) == len(px) - 1:
        for k in (d - 1, d + 1):
            if 0 <= k < len(x) and x[k] == b and px[k] == pb:
                lo = min(k, d)
                if py[:lo] == px[:lo] and py[lo] == px[lo] * px[lo + 1] and py[lo + 1 :] == px[lo + 2 :]:
                    return TimeInfo(lo, info.delay, info.ratio, info.field, folded=True)
    if info.folded and len(py) == len(px) + 1:
        for j in (d,):
            if py[:j] == px[:j] and py[j] * py[j + 1] == px[d] and py[j + 2 :] == px[d + 1 :]:
                for t, k in ((j, j + 1), (j + 1, j)):
                    if py[k] == pb and y[k] == b and py[t] != pb:
                        return TimeInfo(t, info.delay, info.ratio, info.field)
    return None


@op_rule(aten.expand)
def expand(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    arg, info = time_args[0]
    x, out = list(rw.values[arg].shape), list(rw.values[node].shape)
    lead = len(out) - len(x)
    probe = list(rw.probe_values[node].shape)
    sizes = _size_entries(rw, node, out, probe, info.dim + lead)
    for k in range(lead, len(out)):
        if x[k - lead] == out[k]:
            sizes[k] = -1
    rw.env[node] = rw.graph.call_function(aten.expand, (rw.env[arg], sizes))
    rw.info[node] = info.moved(info.dim + lead)


@op_rule(aten.repeat)
def repeat(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    arg, info = time_args[0]
    repeats = list(rw.static(node, 1, "repeats"))
    lead = len(repeats) - rw.values[arg].dim()
    if repeats[info.dim + lead] != 1:
        raise rw.fail(node, "repeats the signal along time", "repeat along channels")
    rw.env[node], rw.info[node] = rw.copy(node), info.moved(info.dim + lead)


@op_rule(aten.slice)
def slice_(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    arg, info = time_args[0]
    x = rw.values[arg]
    dim = norm_dim(rw.static(node, 1, "dim", 0), x.dim())
    if dim != info.dim:
        rw.env[node], rw.info[node] = rw.copy(node), info
        return
    if info.folded:
        raise rw.fail(node, "slices time merged with the batch axis", "split time from the batch first")
    start, end, step = rw.arg(node, 2, "start", None), rw.arg(node, 3, "end", None), rw.arg(node, 4, "step", 1)
    length, plength = x.size(dim), rw.probe_values[arg].size(dim)
    first, _, _ = slice(start, end).indices(length)
    pfirst, _, _ = slice(rw.probe_arg(node, 2, "start"), rw.probe_arg(node, 3, "end")).indices(plength)
    if start is not None and start < 0 or first != pfirst:
        raise rw.fail(
            node, "cuts the start of the signal by an amount that depends on its length", "crop by a constant", True
        )
    if step == 1:
        stop = len(range(*slice(start, end).indices(length)))
        rw.unary(node, Crop(first, max(length - first - stop, 0)), arg, info)
        return
    _decimate(rw, node, arg, info, first, step)


def _decimate(rw: Rewriter, node: fx.Node, arg: fx.Node, info: TimeInfo, first: int, step: int) -> None:
    """``x[..., first::step]`` along time: a crop, a delay line to a multiple of ``step`` (so that each buffer's
    frames 0, step, ... are the offline ones kept), then every ``step``-th frame: rate x step, delay / step."""
    ndim = rw.values[arg].dim()
    y, now = rw.env[arg], info
    if first:
        y, now = rw.emit_stream(Crop(first, 0), y, now, ndim)
    lag = in_phase(now.delay, step)
    if lag:
        y, now = rw.emit_stream(Delay(lag), y, now, ndim)
    rw.fold.require(now.ratio, step)
    rw.env[node] = rw.graph.call_function(aten.slice, (y, now.dim, 0, 9223372036854775807, step))
    rw.info[node] = with_timing(now, grouped(timing_of(now), step, 1))


@op_rule(aten.select)
def select(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    arg, info = time_args[0]
    dim = norm_dim(rw.static(node, 1, "dim"), rw.values[arg].dim())
    if dim == info.dim:
        raise rw.fail(node, "picks single time frames", "slice a range of frames instead")
    rw.env[node], rw.info[node] = rw.copy(node), info.moved(info.dim - (dim < info.dim))


@op_rule(aten.split, aten.split_with_sizes, aten.unbind, aten.chunk, aten.tensor_split)
def split(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    arg, info = time_args[0]
    name = node.target.overloadpacket.__name__
    dim = norm_dim(rw.static(node, 1 if name == "unbind" else 2, "dim", 0), rw.values[arg].dim())
    if dim == info.dim:
        raise rw.fail(node, "splits along time", "split along channels")
    out = info.moved(info.dim - (name == "unbind" and dim < info.dim))
    rw.env[node], rw.info[node] = rw.copy(node), tuple(out for _ in rw.values[node])


@op_rule(operator.getitem)
def getitem(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    container, index = node.args
    info = rw.info[container][index]
    structure = rw.env[container]
    if isinstance(structure, tuple):  # a rule's several results (a recurrence: output, states)
        if structure[index] is None:
            raise rw.fail(node, "reads the final state of a recurrent layer", "use only its output sequence")
        rw.env[node] = structure[index]
    else:
        rw.env[node] = rw.graph.call_function(operator.getitem, (structure, index))
    rw.info[node] = info


@op_rule(aten.flip, aten.roll, aten.index_select, aten.gather, aten.index)
def reorder(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    arg, info = time_args[0]
    name = node.target.overloadpacket.__name__
    if name == "index":
        raise rw.fail(node, "indexes a time-varying tensor with a tensor", "slice with integers")
    dims = rw.static(node, 1 if name != "roll" else 2, "dims" if name != "index_select" else "dim", None)
    dims = [dims] if isinstance(dims, int) else list(dims or range(rw.values[arg].dim()))
    if info.dim in [norm_dim(d, rw.values[arg].dim()) for d in dims]:
        raise rw.fail(
            node, f"reorders frames along time ({name}), which reads the whole signal", "reorder channels only"
        )
    rw.env[node], rw.info[node] = rw.copy(node), info


@op_rule(aten.slice_scatter, aten.select_scatter, aten.copy)
def scatter(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    name = node.target.overloadpacket.__name__
    base = rw.values[node.args[0]]
    if name != "copy":
        dim = norm_dim(rw.static(node, 2, "dim", 0), base.dim())
        base_info = rw.info.get(node.args[0])
        if isinstance(base_info, TimeInfo) and dim == base_info.dim:
            raise rw.fail(node, "writes into a stretch of time", "write into channels, or compute it out of place")
    from streamify.convert.rules.combine import pointwise

    pointwise(rw, node, time_args)


@op_rule(aten.unfold)
def framing(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    """``Tensor.unfold`` along time: :class:`~streamify.layers.Frame` (frames in torch's layout, time at the
    unfolded axis, the window last); along another axis: per frame."""
    arg, info = time_args[0]
    x = rw.values[arg]
    dim = norm_dim(rw.static(node, 1, "dimension", 0), x.dim())
    if dim != info.dim:
        rw.env[node], rw.info[node] = rw.copy(node), info
        return
    size, step = rw.static(node, 2, "size"), rw.static(node, 3, "step")
    layer = _layer(rw, node, lambda: Frame(size, step))
    # ndim + 1: emit_stream moves time last before and the frame axis back to ``dim`` after, always
    rw.env[node], rw.info[node] = rw.emit_stream(layer, rw.env[arg], info, x.dim() + 1)


@op_rule(aten.im2col)
def unfold_2d(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    raise rw.fail(
        node,
        "cuts time into frames with F.unfold (im2col), which has no streaming rule",
        "frame with Tensor.unfold along time",
    )


@op_rule(aten.col2im)
def overlap_add(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    """``F.fold`` of ``[B, C*k, L]`` frames into ``[B, C, 1, T]`` (kernel ``(1, k)``, stride ``(1, s)``):
    :class:`~streamify.layers.OverlapAddFrames` (its left padding is delay; ``output_size`` only adds or
    cuts zeros at the end)."""
    arg, info = time_args[0]
    cols = rw.values[arg]
    out_size, kernel = rw.arg(node, 1, "output_size"), rw.static(node, 2, "kernel_size")
    dilation, padding, stride = (
        rw.static(node, 3, "dilation"),
        rw.static(node, 4, "padding"),
        rw.static(node, 5, "stride"),
    )
    if (
        cols.dim() != 3
        or info.dim != 2
        or out_size[0] != 1
        or kernel[0] != 1
        or list(dilation) != [1, 1]
        or padding[0] != 0
        or stride[0] != 1
    ):
        raise rw.fail(
            node,
            "overlap-adds (F.fold) other than 1-D frames along time (kernel (1, k), stride (1, s), dilation 1)",
            "fold [B, C*k, frames] into [B, C, 1, T] with kernel (1, k)",
        )
    if info.folded:
        raise rw.fail(node, "overlap-adds time merged with the batch axis", "split time from the batch first")
    k = kernel[1]
    frames = rw.graph.call_function(aten.unflatten, (rw.env[arg], 1, [cols.size(1) // k, k]))
    layer = _layer(rw, node, lambda: OverlapAddFrames(k, stride[1], padding[1]))
    y, out = rw.emit_stream(layer, frames, TimeInfo(3, info.delay, info.ratio, info.field), 4)
    rw.env[node] = rw.graph.call_function(aten.unsqueeze, (y, 2))
    rw.info[node] = out


def _layer(rw: Rewriter, node: fx.Node, make: Any) -> Any:
    from streamify.convert.rules.windows import _build

    return _build(rw, node, make)
