"""Window ops: convolutions, pads, pools and upsampling along time (cached_conv's rules).

* ``conv1d`` / ``convolution`` / ``conv_transpose1d`` over ``[batch, channels, time]`` become
  :class:`~streamify.layers.Conv1d` / :class:`~streamify.layers.ConvTranspose1d` (delay: the cache
  that the padding asks for, :func:`streamify.timing.strided_cache`); weights computed in ``forward``
  (a weight norm) are evaluated once. A 2-D conv over ``[batch, channels, rows, time]`` (or time on
  the rows) whose kernel is 1 along time acts per frame and is kept; one whose kernel is 1 along the
  other axis is a 1-D conv per row (rows folded into the batch). Refused: kernels over both axes.
* Pads of time (any mode) become :class:`~streamify.layers.Pad` (delay: minus the left pad); a crop
  (negative pad) becomes :class:`~streamify.layers.Crop`. Refused: a pad amount that depends on the length.
* Pools become :class:`AvgPool1d` / :class:`MaxPool1d`; nearest or linear upsampling by an integer
  scale along time becomes :func:`~streamify.layers.resample.upsample` (2-D: along time only).
"""

from __future__ import annotations

from typing import Any, Callable, List

import torch
import torch.fx as fx
from torch import nn

from streamify.convert.rewrite import OpRefusal, Pairs, Rewriter, norm_dim
from streamify.convert.rules import op_rule
from streamify.convert.timeinfo import TimeInfo
from streamify.layers.base import StreamingError, StreamingModule
from streamify.layers.conv import AvgPool1d, Conv1d, MaxPool1d
from streamify.layers.conv_transpose import ConvTranspose1d
from streamify.layers.resample import upsample
from streamify.layers.shift import Crop, Pad

aten = torch.ops.aten


def _first(v: Any) -> Any:
    return v[0] if isinstance(v, (list, tuple)) else v


def _single(rw: Rewriter, node: fx.Node, time_args: Pairs, what: str):
    if len(time_args) != 1 or time_args[0][0] is not node.args[0]:
        raise rw.fail(node, f"{what} with time-varying weights or several time inputs", "use constant weights")
    return time_args[0]


def _build(rw: Rewriter, node: fx.Node, make: Callable[[], StreamingModule]) -> StreamingModule:
    try:
        return make()
    except StreamingError as error:
        raise rw.fail(node, str(error).removeprefix("streamify: "), "change the layer's configuration") from error


def _as_1d(
    rw: Rewriter,
    node: fx.Node,
    time_args: Pairs,
    build: Callable[[int], StreamingModule],
    per_frame: Callable[[int], bool],
    one_d_ok: Callable[[int], bool],
) -> None:
    """Apply a 1-D time layer to the input of ``node``: directly for ``[B, C, T]``; for ``[B, C, H, W]``
    with time on H or W, per frame (kept) or per row of the other axis (folded into the batch)."""
    arg, info = _single(rw, node, time_args, "a window op")
    if info.folded:
        raise rw.fail(node, "slides a window over time merged with the batch axis", "split time from the batch first")
    x = rw.values[arg]
    if x.dim() == 3 and info.dim == 2:
        rw.unary(node, build(0), arg, info)
        return
    if x.dim() != 4 or info.dim not in (2, 3):
        raise rw.fail(node, f"gets a {x.dim()}-D tensor with time on axis {info.dim}", "keep [batch, channels, time]")
    time_axis = info.dim - 2  # 0: rows, 1: columns of the 2-D window
    other = 1 - time_axis
    if per_frame(time_axis):
        rw.env[node] = rw.copy(node)
        rw.info[node] = info
        return
    if not one_d_ok(other):
        raise rw.fail(
            node,
            "slides a 2-D window over time and another axis together",
            "use kernels of size 1 along one of the two axes ((k, 1) or (1, k)), time last",
        )
    o = other + 2
    order = [0, o, 1, info.dim]
    inverse = [order.index(i) for i in range(4)]
    y = rw.graph.call_function(aten.permute, (rw.env[arg], order))
    y = rw.graph.call_function(aten.flatten, (y, 0, 1))
    y, out = rw.emit_stream(build(time_axis), y, TimeInfo(2, info.delay, info.ratio, info.field), 3)
    y = rw.graph.call_function(aten.unflatten, (y, 0, [-1, x.size(o)]))
    rw.env[node] = rw.graph.call_function(aten.permute, (y, inverse))
    rw.info[node] = TimeInfo(info.dim, out.delay, out.ratio, out.field)


def _conv_args(rw: Rewriter, node: fx.Node):
    name = node.target.overloadpacket.__name__ if hasattr(node.target, "overloadpacket") else ""
    get = lambda i, n, d: rw.static(node, i, n, d)  # noqa: E731
    weight, bias = get(1, "weight", None), get(2, "bias", None)
    if name == "convolution":
        stride, padding, dilation = get(3, "stride", [1]), get(4, "padding", [0]), get(5, "dilation", [1])
        transposed, output_padding, groups = (
            get(6, "transposed", False),
            get(7, "output_padding", [0]),
            get(8, "groups", 1),
        )
    elif name.startswith("conv_transpose"):
        stride, padding, output_padding = get(3, "stride", [1]), get(4, "padding", [0]), get(5, "output_padding", [0])
        groups, dilation, transposed = get(6, "groups", 1), get(7, "dilation", [1]), True
    else:
        stride, padding, dilation = get(3, "stride", [1]), get(4, "padding", [0]), get(5, "dilation", [1])
        groups, transposed, output_padding = get(6, "groups", 1), False, [0]
    return weight, bias, stride, padding, dilation, transposed, output_padding, groups


def _pick(v: Any, axis: int, n: int) -> Any:
    if isinstance(v, str):
        return v
    v = list(v) if isinstance(v, (list, tuple)) else [v]
    return v[axis] if len(v) == n else v[0]


@op_rule(aten.conv1d, aten.conv2d, aten.convolution, aten.conv_transpose1d)
def conv(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    weight, bias, stride, padding, dilation, transposed, output_padding, groups = _conv_args(rw, node)
    n = weight.dim() - 2
    if n not in (1, 2):
        raise rw.fail(node, f"is a {n}-D convolution", "use 1-D convs over time (or 2-D with time last)")

    def build(axis: int) -> StreamingModule:
        w = weight if n == 1 else (weight[:, :, :, 0:1].squeeze(3) if axis == 0 else weight[:, :, 0, :])
        k, s, d = w.size(-1), _pick(stride, axis, n), _pick(dilation, axis, n)
        p = _pick(padding, axis, n)
        if transposed:
            layer = nn.ConvTranspose1d(
                w.size(0),
                w.size(1) * groups,
                k,
                s,
                p,
                _pick(output_padding, axis, n),
                groups,
                bias is not None,
                d,
                dtype=w.dtype,
            )
        else:
            layer = nn.Conv1d(w.size(1) * groups, w.size(0), k, s, 0, d, groups, bias is not None, dtype=w.dtype)
        layer.weight.data = w.detach().clone().contiguous()
        if bias is not None:
            layer.bias.data = bias.detach().clone()
        if transposed:
            return _build(rw, node, lambda: ConvTranspose1d.from_torch(layer))
        return _build(rw, node, lambda: Conv1d.from_torch(layer, padding=p))

    def per_frame(axis: int) -> bool:
        return (
            not transposed
            and weight.size(2 + axis) == 1
            and _pick(stride, axis, n) == 1
            and _pick(padding, axis, n) in (0, "same", "valid")
        )

    def one_d_ok(axis: int) -> bool:
        return (
            weight.size(2 + axis) == 1
            and _pick(stride, axis, n) == 1
            and _pick(padding, axis, n) in (0, "valid", "same")
        )

    _as_1d(rw, node, time_args, build, per_frame, one_d_ok)


def _pad_rule(mode_of: Callable[[Rewriter, fx.Node], str]):
    def rule(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
        arg, info = _single(rw, node, time_args, "a pad")
        x = rw.values[arg]
        pad = list(rw.arg(node, 1, "pad"))
        mode = mode_of(rw, node)
        value = (
            rw.arg(node, 3 if node.target.overloadpacket is aten.pad else 2, "value", None)
            if mode == "constant"
            else None
        )
        pairs = {x.dim() - 1 - i // 2: (pad[i], pad[i + 1]) for i in range(0, len(pad), 2)}
        left, right = pairs.get(info.dim, (0, 0))
        others = any(p != (0, 0) for d, p in pairs.items() if d != info.dim)
        if others:
            if (left, right) != (0, 0):
                raise rw.fail(node, "pads time together with other axes", "pad time in a call of its own")
            if pad != list(rw.probe_arg(node, 1, "pad")):
                raise rw.fail(node, "pads by an amount that depends on the signal length", "pad by a constant", True)
            rw.env[node], rw.info[node] = rw.copy(node), info
            return
        probe = list(rw.probe_arg(node, 1, "pad"))
        pleft, _ = {x.dim() - 1 - i // 2: (probe[i], probe[i + 1]) for i in range(0, len(probe), 2)}.get(
            info.dim, (0, 0)
        )
        if pleft != left:
            raise rw.fail(
                node, "pads the start of the signal by an amount that depends on its length", "pad by a constant", True
            )
        y, out = rw.env[arg], info
        if left < 0 or right < 0:
            y, out = rw.emit_stream(Crop(max(-left, 0), max(-right, 0)), y, out, x.dim())
        if left > 0 or right > 0:
            y, out = rw.emit_stream(Pad(max(left, 0), max(right, 0), mode, float(value or 0.0)), y, out, x.dim())
        rw.env[node], rw.info[node] = y, out

    return rule


op_rule(aten.pad)(_pad_rule(lambda rw, node: rw.arg(node, 2, "mode", "constant")))
op_rule(aten.constant_pad_nd)(_pad_rule(lambda rw, node: "constant"))
op_rule(aten.reflection_pad1d, aten.reflection_pad2d)(_pad_rule(lambda rw, node: "reflect"))
op_rule(aten.replication_pad1d, aten.replication_pad2d)(_pad_rule(lambda rw, node: "replicate"))
op_rule(aten._pad_circular)(_pad_rule(lambda rw, node: "circular"))


@op_rule(aten.avg_pool1d)
def avg_pool(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    kernel = _first(rw.static(node, 1, "kernel_size"))
    stride = rw.static(node, 2, "stride", [])
    stride = kernel if stride in (None, [], ()) else _first(stride)
    padding = _first(rw.static(node, 3, "padding", 0))
    ceil, count = rw.static(node, 4, "ceil_mode", False), rw.static(node, 5, "count_include_pad", True)
    _as_1d(
        rw,
        node,
        time_args,
        lambda a: _build(rw, node, lambda: AvgPool1d(kernel, stride, padding, ceil, count)),
        lambda a: False,
        lambda a: False,
    )


@op_rule(aten.max_pool1d, aten.max_pool1d_with_indices)
def max_pool(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    if node.target.overloadpacket is aten.max_pool1d_with_indices and any(
        u.target is not __import__("operator").getitem or u.args[1] != 0 for u in node.users
    ):
        raise rw.fail(node, "returns pooling indices", "drop return_indices")
    kernel = _first(rw.static(node, 1, "kernel_size"))
    stride = rw.static(node, 2, "stride", [])
    stride = kernel if stride in (None, [], ()) else _first(stride)
    padding, dilation = _first(rw.static(node, 3, "padding", 0)), _first(rw.static(node, 4, "dilation", 1))
    ceil = rw.static(node, 5, "ceil_mode", False)
    arg, info = _single(rw, node, time_args, "a pool")
    layer = _build(rw, node, lambda: MaxPool1d(kernel, stride, padding, dilation, ceil))
    _as_1d(rw, node, time_args, lambda a: layer, lambda a: False, lambda a: False)
    if node.target.overloadpacket is aten.max_pool1d_with_indices:
        rw.env[node], rw.info[node] = (rw.env[node], None), (rw.info[node], None)


def _scales(rw: Rewriter, node: fx.Node, n: int) -> List[float]:
    """Scale factors of an upsampling (from its output size where export baked one in)."""
    x, y = rw.values[node.args[0]], rw.values[node]
    px, py = rw.probe_values[node.args[0]], rw.probe_values[node]
    scales = []
    for k in range(n):
        a, b = y.size(2 + k) / x.size(2 + k), py.size(2 + k) / px.size(2 + k)
        if a != b:
            raise rw.fail(node, "resizes to a size computed from the signal", "upsample by a scale_factor", True)
        scales.append(a)
    return scales


def _upsample_rule(mode: str, n: int):
    def rule(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
        if mode == "linear" and rw.arg(node, 2, "align_corners", False):
            raise rw.fail(
                node, "uses align_corners=True, which depends on the signal length", "use align_corners=False"
            )
        scales = _scales(rw, node, n)

        def build(axis: int) -> StreamingModule:
            scale = scales[axis]
            if scale < 1 or not float(scale).is_integer():
                raise rw.fail(
                    node, f"resamples time by {scale}", "upsample by an integer scale (downsample by a strided conv)"
                )
            return _build(rw, node, lambda: upsample(int(scale), mode))

        _as_1d(rw, node, time_args, build, lambda axis: scales[axis] == 1, lambda axis: scales[axis] == 1)

    return rule


op_rule(aten.upsample_nearest1d, aten._upsample_nearest_exact1d)(_upsample_rule("nearest", 1))
op_rule(aten.upsample_nearest2d, aten._upsample_nearest_exact2d)(_upsample_rule("nearest", 2))
op_rule(aten.upsample_linear1d)(_upsample_rule("linear", 1))

__all__ = ["OpRefusal", "conv", "norm_dim"]
