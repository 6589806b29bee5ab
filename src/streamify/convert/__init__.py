"""Automatic conversion of plain PyTorch models into exact streaming models.

``streamify.convert(model, example)`` captures the model's computation (torch.fx, see
:mod:`streamify.convert.capture`), rewrites it into a graph of streaming layers with
delay alignment (:mod:`streamify.convert.builder`) and wraps the result in a
:class:`StreamingModel`.
"""

from __future__ import annotations

import copy
import math
from fractions import Fraction

import torch
import torch.fx as fx
from torch import Tensor, nn

from streamify.convert.builder import GraphRewriter, Unsupported
from streamify.convert.capture import MethodCall, capture
from streamify.convert.model import StreamingModel
from streamify.convert.timeinfo import TimeInfo
from streamify.layers.base import StreamingError
from streamify.timing import lcm_all

__all__ = ["StreamingModel", "Unsupported", "convert"]


def convert(
    model: nn.Module,
    example: Tensor,
    method: str = "forward",
    allow_random: bool = False,
) -> StreamingModel:
    """Make ``model.<method>`` stream exactly.

    Args:
        model: a trained model written with plain ``torch.nn`` / ``torch.nn.functional``
            (it is copied and put in eval mode; the original is not modified).
        example: an input ``[batch, channels, time]``; its length should span a few
            receptive fields and be a multiple of the model's total stride.
        method: the method to convert (``"encode"``, ``"decode"``, ...).
        allow_random: keep random ops (noise) instead of refusing them; the
            streamed output then differs from offline by that noise.

    Returns:
        A :class:`StreamingModel`: ``delay``, ``buffer_multiple``, ``ratio``, ``reset()``.

    Raises:
        StreamingError: naming the op, its source line and a fix, where the model cannot stream.
    """
    if example.dim() != 3:
        raise StreamingError(
            f"streamify: convert: the example must be [batch, channels, time], got {tuple(example.shape)}"
        )
    model = copy.deepcopy(model).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    with torch.no_grad():
        getattr(model, method)(example)  # runs weight-norm hooks and checks the example
    gm = capture(model, method)
    probe_length = example.size(-1) + max(example.size(-1) // 2, 1)
    probe = torch.cat([example, example], -1)[..., :probe_length].contiguous()
    rewriter = GraphRewriter(gm, example, probe, allow_random=allow_random)
    graph, out_info = rewriter.run()
    if not isinstance(out_info, TimeInfo):
        raise StreamingError(
            "streamify: convert: the method must return one tensor [batch, channels, frames] that varies in time; "
            f"it returns {type(rewriter.values[list(gm.graph.nodes)[-1].args[0]]).__name__ if False else 'something else'}"
        )
    root = nn.Module()
    root.streams = nn.ModuleList(rewriter.streams)
    for name, module in rewriter.kept_modules.items():
        _set_path(root, name, module)
    for node in graph.nodes:
        if node.op == "get_attr":
            _set_path(root, node.target, _get_path(gm, node.target))
    streaming_graph = fx.GraphModule(root, graph)
    streaming_graph.streams = root.streams
    streaming_graph.graph.eliminate_dead_code()
    streaming_graph.recompile()
    delay = out_info.delay
    out_value = rewriter.values[[n for n in gm.graph.nodes if n.op == "output"][0].args[0]]
    if out_info.dim != out_value.dim() - 1 or out_value.dim() != 3:
        raise StreamingError(
            "streamify: convert: the output must be [batch, channels, frames] with time last, "
            f"got shape {tuple(out_value.shape)} with time on axis {out_info.dim}"
        )
    multiple = lcm_all(rewriter.multiples + [Fraction(1).numerator])
    field = -1 if out_info.field is None else math.ceil(out_info.field)
    result = StreamingModel(
        streaming_graph,
        MethodCall(model, method),
        method,
        delay,
        out_info.ratio,
        multiple,
        field,
        example.size(1),
        out_value.size(1),
        example.dtype,
    )
    if delay < 0:
        raise StreamingError(
            f"streamify: convert: the output leads the offline output by {-delay} frames (a pad without a following "
            "layer); this is not supported yet"
        )
    for layer in result.graph.streams:
        layer.is_root = False
    result.reset()
    return result


def _get_path(module: nn.Module, path: str):
    for part in path.split("."):
        module = getattr(module, part)
    return module


def _set_path(root: nn.Module, path: str, value) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        if not hasattr(root, part):
            setattr(root, part, nn.Module())
        root = getattr(root, part)
    if isinstance(value, (nn.Module, nn.Parameter)) or not isinstance(value, Tensor):
        setattr(root, parts[-1], value)
    else:
        root.register_buffer(parts[-1], value)
