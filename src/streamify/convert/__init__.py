"""Automatic conversion of plain PyTorch models into exact streaming models.

``streamify.convert(model, example)`` captures the model's computation (torch.fx, see
:mod:`streamify.convert.capture`), rewrites it into a graph of streaming layers with
delay alignment (:mod:`streamify.convert.builder`) and wraps the result in a
:class:`StreamingModel`.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import torch
import torch.fx as fx
from torch import Tensor, nn

from streamify.convert.builder import GraphRewriter, Unsupported
from streamify.convert.capture import capture
from streamify.convert.draws import ZeroDraws
from streamify.convert.opcapture import capture_ops
from streamify.convert.prepare import private_copy
from streamify.convert.rewrite import Rewriter
from streamify.convert.trial_runs import run_model
from streamify.convert.verify import verify as check
from streamify.layers.base import StreamingError, StreamingModule
from streamify.layers.torch_layers import rule_for
from streamify.runtime.model import MethodCall, StreamingModel

__all__ = ["StreamingModel", "Unsupported", "convert"]


def convert(
    model: nn.Module,
    example: Tensor,
    method: str = "forward",
    allow_random: bool = False,
    verify: bool = True,
    capture: str = "auto",
) -> StreamingModel:
    """Make ``model.<method>`` stream exactly.

    Args:
        model: a trained model written with plain ``torch.nn`` / ``torch.nn.functional``
            (it is copied and put in eval mode; the original is not modified).
        example: an input ``[batch, channels, time]``; its length should span a few
            receptive fields and be a multiple of the model's total stride.
        method: the method to convert (``"encode"``, ``"decode"``, ...).
        allow_random: let the fx tracer keep random ops (the op-level capture always keeps them): draws
            are streamed as real draws, new per buffer, and verified with every draw replaced by zeros.
        capture: ``"auto"`` (the op-level capture, then the fx tracer where it cannot convert the model),
            ``"ops"`` or ``"fx"`` (one of them only: for comparisons).
        verify: stream a random probe through a copy of the result at several buffer schedules, in the
            model's dtype and in float64, and check it against the model (:mod:`streamify.convert.verify`);
            ``False`` skips it (the result is then unchecked).

    Returns:
        A :class:`StreamingModel`: ``delay``, ``buffer_multiple``, ``ratio``, ``reset()``. It takes
        buffers ``[batch, channels, n]``, ``n`` a multiple of ``buffer_multiple``, and returns
        ``[batch, out_channels, n / ratio]``: the model's output, ``delay`` frames late.

    Raises:
        StreamingError: naming the op, its source line and a fix, where the model cannot stream; or, from
            the verification, naming the first layer (call order) whose streamed output differs from its
            offline output, with its delay and source line.

    >>> import torch
    >>> from streamify import convert
    >>> model = torch.nn.Sequential(
    ...     torch.nn.Conv1d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv1d(4, 1, 4, stride=2, padding=1)
    ... )
    >>> stream = convert(model, torch.randn(1, 1, 64))
    >>> stream.delay, stream.buffer_multiple
    (1, 2)
    >>> x = torch.randn(1, 1, 32)
    >>> y = torch.cat([stream(x[..., i : i + 8]) for i in range(0, 32, 8)], -1)
    >>> y.shape
    torch.Size([1, 1, 16])
    >>> torch.allclose(y[..., 1:], model(x)[..., :15], atol=1e-6)
    True
    """
    model, probe = _prepared(model, example, method, capture)
    op_error: Optional[StreamingError] = None
    if capture == "ops":
        return _checked(convert_ops(model, method, example, probe, allow_random), example, verify, allow_random)
    if capture == "auto" and _has_recurrent_layers(model):
        return _convert_recurrent(model, method, example, probe, allow_random, verify)
    if capture == "auto" and op_capture_applies(model):
        try:
            return _checked(convert_ops(model, method, example, probe, allow_random), example, verify, allow_random)
        except StreamingError as error:  # the fx tracer may still convert it (see docs/conversion.md)
            op_error = error
    return _convert_fx_after(op_error, model, method, example, probe, allow_random, verify)


def _convert_fx_after(
    op_error: Optional[StreamingError],
    model: nn.Module,
    method: str,
    example: Tensor,
    probe: Tensor,
    allow_random: bool,
    verify: bool,
) -> StreamingModel:
    """The fx tracer's conversion, after the op level refused ``op_error`` (None: it was not tried)."""
    try:
        return _checked(_convert_fx(model, method, example, probe, allow_random), example, verify, allow_random)
    except StreamingError as error:
        if op_error is not None and not getattr(op_error, "fallback", True):
            raise op_error from None  # the op-level rules named the true cause
        if op_error is not None:  # both failed: the fx tracer's refusal, and why the op level could not help
            why = str(op_error).removeprefix("streamify: convert: ")
            raise type(error)(f"{error} (at the op level: {why})") from error
        raise


def _prepared(model: nn.Module, example: Tensor, method: str, capture: str) -> Tuple[nn.Module, Tensor]:
    """The converter's private copy of ``model`` (checked on the example) and the probe signal.

    The probe is twice as long as the example, with one batch item more: whatever the capture decides from
    the example's shapes must hold for it too, and integers that differ depend on the length.
    """
    if example.dim() != 3:
        raise StreamingError(
            f"streamify: convert: the example must be [batch, channels, time], got {tuple(example.shape)}"
        )
    if not callable(getattr(model, method, None)):
        raise StreamingError(f"streamify: convert: {type(model).__name__} has no method {method!r}")
    model = private_copy(model)
    run_model(model, method, example)  # runs weight-norm hooks and checks the example
    probe = torch.cat([example, example.flip(-1)], -1)
    probe = torch.cat([probe, probe[:1]], 0).contiguous()
    if capture not in ("auto", "ops", "fx"):
        raise StreamingError(f"streamify: convert: capture must be 'auto', 'ops' or 'fx', not {capture!r}")
    return model, probe


def _checked(result: StreamingModel, example: Tensor, verify: bool, allow_random: bool) -> StreamingModel:
    if verify and result.random_kept:  # streamed with real draws, verified with draws of zeros
        with ZeroDraws():
            check(result, example, result.layer_sources)
    elif verify:
        check(result, example, result.layer_sources)
    result.reset()
    return result


def _convert_fx(model: nn.Module, method: str, example: Tensor, probe: Tensor, allow_random: bool) -> StreamingModel:
    """The fx tracer's conversion (:mod:`streamify.convert.capture`, :mod:`streamify.convert.builder`)."""
    gm = capture(model, method, example, probe)
    rewriter = GraphRewriter(gm, example, probe, allow_random=allow_random, model=model, method=method)
    graph, out_info, out_value = rewriter.run()
    root = nn.Module()
    root.streams = nn.ModuleList(rewriter.streams)
    for name, module in rewriter.kept_modules.items():
        _set_path(root, name, module)
    for node in graph.nodes:
        if node.op == "get_attr":
            _set_path(root, node.target, _get_path(gm, node.target))
    return assemble(root, graph, model, method, out_info, out_value, example, rewriter, "fx")


def assemble(
    root: nn.Module,
    graph: fx.Graph,
    model: nn.Module,
    method: str,
    out_info: Any,
    out_value: Tensor,
    example: Tensor,
    rewriter: Any,
    capture_kind: str,
) -> StreamingModel:
    """The :class:`StreamingModel` around a rewritten graph whose streaming layers are ``root.streams``."""
    streaming_graph = fx.GraphModule(root, graph)
    streaming_graph.streams = root.streams  # a ModuleList, so that reset() can loop over it in TorchScript
    streaming_graph.graph.eliminate_dead_code()
    streaming_graph.recompile()
    result = StreamingModel(
        streaming_graph,
        MethodCall(model, method),
        method,
        out_info.delay,
        out_info.ratio,
        rewriter.fold.buffer_multiple,
        -1 if out_info.field is None else math.ceil(out_info.field),
        example.size(1),
        out_value.size(1),
        example.dtype,
        input_ratios=rewriter.input_ratios,
        layer_sources=rewriter.sources,
        random_kept=bool(rewriter.random_kept),
        capture=capture_kind,
    )
    result.requires_grad_(False)  # an inference model: no autograd graph per buffer
    return result


def convert_ops(model: nn.Module, method: str, example: Tensor, probe: Tensor, allow_random: bool) -> StreamingModel:
    """The op-level conversion (:mod:`streamify.convert.opcapture`, :mod:`streamify.convert.rewrite`).

    The capture runs on at least two batch items: with one, torch skips copies (a permuted ``[T, 1, C]``
    reshapes as a view) that it makes for more, and the two captures would execute different ops.
    """
    if example.size(0) == 1:
        example = torch.cat([example, example.flip(-1)], 0)
        probe = torch.cat([example, example.flip(-1)], -1)
        probe = torch.cat([probe, probe[:1]], 0).contiguous()
    rewriter = Rewriter(capture_ops(model, method, example, probe), example, probe, allow_random)
    graph, out_info, out_value = rewriter.run()
    rewriter.root.streams = nn.ModuleList(rewriter.streams)
    return assemble(rewriter.root, graph, model, method, out_info, out_value, example, rewriter, "aten")


def _convert_recurrent(
    model: nn.Module, method: str, example: Tensor, probe: Tensor, allow_random: bool, verify: bool
) -> StreamingModel:
    """A model with recurrent layers: ``torch.export`` traces them step by step over the example (100 s for a
    small GRU over 4096 samples), so the fx tracer, which keeps them whole, goes first; the op level takes what
    it refuses (time merged with the batch around an LSTM, say)."""
    try:
        return _checked(_convert_fx(model, method, example, probe, allow_random), example, verify, allow_random)
    except StreamingError as error:
        fx_error = error
    if not op_capture_applies(model):
        raise fx_error
    try:
        return _checked(convert_ops(model, method, example, probe, allow_random), example, verify, allow_random)
    except StreamingError as error:
        if not getattr(error, "fallback", True):
            raise  # the op-level rules named the true cause
        why = str(error).removeprefix("streamify: convert: ")
        raise type(fx_error)(f"{fx_error} (at the op level: {why})") from fx_error


def _has_recurrent_layers(model: nn.Module) -> bool:
    return any(isinstance(module, nn.RNNBase) for module in model.modules())


def op_capture_applies(model: nn.Module) -> bool:
    """Whether the op-level capture may take ``model``: not where it holds streamify layers, TorchScript
    modules or layers registered with ``streamify.register`` (those are kept whole by the fx tracer)."""
    for module in model.modules():
        if isinstance(module, (StreamingModule, torch.jit.ScriptModule)):
            return False
        found = rule_for(module)
        if found is not None and not found[0].__module__.startswith("torch."):
            return False
    return True


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
