"""The fx tracer's rules for functional time ops.

The methods are mixed into :class:`streamify.convert.builder.GraphRewriter`, whose helpers they use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from streamify.convert.emit import Pairs
from streamify.convert.timeinfo import TimeInfo
from streamify.layers.base import StreamingModule
from streamify.layers.conv import AvgPool1d, Conv1d, MaxPool1d
from streamify.layers.conv_transpose import ConvTranspose1d
from streamify.layers.resample import upsample
from streamify.layers.shift import Crop, Pad

if TYPE_CHECKING:
    from streamify.convert.builder import GraphRewriter


class WindowVisitors:
    """Convolutions, transposed convolutions, pads, interpolation and pools become streaming layers."""

    def visit_conv(self: GraphRewriter, node: fx.Node, time_args: Pairs) -> None:
        arg, info = self._single_time_input(node, time_args, "a convolution")
        weight = self._const(node, 1, "weight", None)
        bias = self._const(node, 2, "bias", None)
        stride = self._const(node, 3, "stride", 1)
        padding = self._const(node, 4, "padding", 0)
        dilation = self._const(node, 5, "dilation", 1)
        groups = self._const(node, 6, "groups", 1)
        self._require_last(node, arg, info)
        first = lambda v: v[0] if isinstance(v, (list, tuple)) else v  # noqa: E731
        conv = nn.Conv1d(
            weight.size(1) * groups,
            weight.size(0),
            weight.size(-1),
            first(stride),
            0,
            first(dilation),
            groups,
            bias is not None,
            dtype=weight.dtype,
        )
        conv.weight.data = weight.detach().clone()
        if bias is not None:
            conv.bias.data = bias.detach().clone()
        pad = padding if isinstance(padding, str) else first(padding)
        streaming = Conv1d.from_torch(conv, padding=pad)
        self._emit_unary(node, streaming, arg, info)

    def visit_conv_transpose(self: GraphRewriter, node: fx.Node, time_args: Pairs) -> None:
        arg, info = self._single_time_input(node, time_args, "a transposed convolution")
        weight = self._const(node, 1, "weight", None)
        bias = self._const(node, 2, "bias", None)
        first = lambda v: v[0] if isinstance(v, (list, tuple)) else v  # noqa: E731
        stride = first(self._const(node, 3, "stride", 1))
        padding = first(self._const(node, 4, "padding", 0))
        output_padding = first(self._const(node, 5, "output_padding", 0))
        groups = self._const(node, 6, "groups", 1)
        dilation = first(self._const(node, 7, "dilation", 1))
        self._require_last(node, arg, info)
        conv = nn.ConvTranspose1d(
            weight.size(0),
            weight.size(1) * groups,
            weight.size(-1),
            stride,
            padding,
            output_padding,
            groups,
            bias is not None,
            dilation,
            dtype=weight.dtype,
        )
        conv.weight.data = weight.detach().clone()
        if bias is not None:
            conv.bias.data = bias.detach().clone()
        self._emit_unary(node, ConvTranspose1d.from_torch(conv), arg, info)

    def visit_pad(self: GraphRewriter, node: fx.Node, time_args: Pairs) -> None:
        arg, info = self._single_time_input(node, time_args, "a pad")
        x = self.values[arg]
        pad = list(self._const(node, 1, "pad", None))
        mode = self._const(node, 2, "mode", "constant")
        value = self._const(node, 3, "value", None)
        # pad lists pairs from the last dimension backwards
        pairs = {x.dim() - 1 - i // 2: (pad[i], pad[i + 1]) for i in range(0, len(pad), 2)}
        if any(p != (0, 0) for d, p in pairs.items() if d != info.dim):
            if mode != "constant" or pairs.get(info.dim, (0, 0)) != (0, 0):
                raise self.fail(node, "pads time together with other axes", "pad time in a call of its own")
            self.env[node] = self.copy_node(node)
            self.info[node] = info
            return
        left, right = pairs.get(info.dim, (0, 0))
        probe_pad = list(
            fx.node.map_arg(node.args[1] if len(node.args) > 1 else node.kwargs["pad"], lambda n: self.probe_values[n])
        )
        if probe_pad[:2] != pad[:2] and probe_pad[0] != pad[0]:
            raise self.fail(
                node, "pads the start of the signal by an amount that depends on its length", "pad by a constant"
            )
        if left < 0 or right < 0:
            crop = Crop(max(-left, 0), max(-right, 0))
            y, out = self.emit_stream(crop, self.env[arg], info, x.dim(), node.name)
            if left > 0 or right > 0:
                y, out = self.emit_stream(
                    Pad(max(left, 0), max(right, 0), mode, value or 0.0), y, out, x.dim(), node.name
                )
        else:
            y, out = self.emit_stream(
                Pad(left, right, mode, float(value or 0.0)), self.env[arg], info, x.dim(), node.name
            )
        self.env[node] = y
        self.info[node] = out

    def visit_interpolate(self: GraphRewriter, node: fx.Node, time_args: Pairs) -> None:
        arg, info = self._single_time_input(node, time_args, "an interpolation")
        self._require_last(node, arg, info)
        size = self._const(node, 1, "size", None)
        scale = self._const(node, 2, "scale_factor", None)
        mode = self._const(node, 3, "mode", "nearest")
        align = self._const(node, 4, "align_corners", None)
        if size is not None or scale is None:
            raise self.fail(node, "resizes to a size computed from the signal", "use scale_factor")
        if align:
            raise self.fail(
                node, "uses align_corners=True, which depends on the signal length", "use align_corners=False"
            )
        scale = scale[0] if isinstance(scale, (list, tuple)) else scale
        if scale < 1 and float(1 / scale).is_integer():
            raise self.fail(node, "downsamples by interpolation", "use a strided conv or pool")
        self._emit_unary(node, upsample(scale, mode), arg, info)

    def visit_pool(self: GraphRewriter, node: fx.Node, time_args: Pairs) -> None:
        arg, info = self._single_time_input(node, time_args, "a pool")
        self._require_last(node, arg, info)
        first = lambda v: v[0] if isinstance(v, (list, tuple)) else v  # noqa: E731
        kernel = first(self._const(node, 1, "kernel_size", None))
        stride = self._const(node, 2, "stride", None)
        stride = kernel if stride in (None, [], ()) else first(stride)
        padding = first(self._const(node, 3, "padding", 0))
        if node.target in (F.avg_pool1d, torch.avg_pool1d):
            ceil_mode = self._const(node, 4, "ceil_mode", False)
            count = self._const(node, 5, "count_include_pad", True)
            module: StreamingModule = AvgPool1d(kernel, stride, padding, ceil_mode, count)
        else:
            dilation = first(self._const(node, 4, "dilation", 1))
            ceil_mode = self._const(node, 5, "ceil_mode", False)
            if self._const(node, 6, "return_indices", False):
                raise self.fail(node, "returns pooling indices", "drop return_indices")
            module = MaxPool1d(kernel, stride, padding, dilation, ceil_mode)
        self._emit_unary(node, module, arg, info)

    def _require_last(self: GraphRewriter, node: fx.Node, arg: fx.Node, info: TimeInfo) -> None:
        x = self.values[arg]
        if x.dim() != 3 or info.dim != 2:
            raise self.fail(
                node, "gets a tensor that is not [batch, channels, time]", "keep that layout for time layers"
            )

    def _emit_unary(self: GraphRewriter, node: fx.Node, module: StreamingModule, arg: fx.Node, info: TimeInfo) -> None:
        y, out = self.emit_stream(module, self.env[arg], info, self.values[arg].dim(), node.name)
        self.env[node] = y
        self.info[node] = out
