"""Runs of the model and of its captured graph on signals of several lengths, with errors a user can act on.

A model that runs on the example but fails on a longer signal (or fails on the example itself)
most often has an example length that merely happens to fit: a down/up-sampling pair whose
lengths only match for some lengths, or a layer sized to the example (``nn.Linear`` over time).
The errors here name the layer, its source line, the real cause and the length to use.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import Tensor, nn

from streamify.layers.base import StreamingError


def total_stride(model: nn.Module) -> int:
    """The least common multiple of the products of the strides of the model's downsampling layers (>= 1).

    A signal length that is a multiple of it gives every strided conv or pool a whole number of frames.
    """
    product = 1
    for module in model.modules():
        stride = None
        if isinstance(module, (nn.Conv1d, nn.AvgPool1d, nn.MaxPool1d)) and not isinstance(module, nn.ConvTranspose1d):
            stride = module.stride
        if stride is None:
            continue
        s = stride[0] if isinstance(stride, (tuple, list)) else stride
        if isinstance(s, int) and s > 1:
            product *= s
    return product


def suggested_lengths(run: Callable[[Tensor], Any], example: Tensor, stride: int) -> List[int]:
    """Lengths near the example's, multiples of ``stride``, on which the model runs, and at twice the length."""
    length = example.size(-1)
    candidates: List[int] = []
    for step in (stride, stride * 2, stride * 4, stride * 8):
        for n in (length // step * step, math.ceil(length / step) * step):
            if n > 0 and n not in candidates:
                candidates.append(n)
    found = []
    for n in sorted(candidates, key=lambda n: (abs(n - length), n)):
        try:
            with torch.no_grad():
                for m in (n, 2 * n):
                    run(_resized(example, m))
        except Exception:
            continue
        found.append(n)
        if len(found) == 2:
            break
    return found


def _resized(example: Tensor, length: int) -> Tensor:
    reps = math.ceil(length / example.size(-1))
    return example.repeat(1, 1, reps)[..., :length].contiguous()


def first_conv(model: nn.Module) -> Optional[Tuple[str, nn.Module]]:
    """The first ``Conv1d`` or ``ConvTranspose1d`` of ``model`` in module order, named ``"path: Class"``, or None.

    Its ``in_channels`` are what the model most likely takes (:func:`streamify.loading.guess_channels`).
    """
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
            return f"{name or type(model).__name__}: {type(module).__name__}", module
    return None


def _channel_mismatch(model: nn.Module, example: Tensor) -> Optional[str]:
    """Where the first conv of ``model`` (module order) takes another channel count than ``example`` has."""
    found = first_conv(model)
    if found is None or found[1].in_channels == example.size(1):
        return None
    label, conv = found
    return (
        f"the example has {example.size(1)} channels but the first conv ({label}) takes {conv.in_channels}; "
        f"give an example [batch, {conv.in_channels}, time]"
    )


def length_advice(run: Callable[[Tensor], Any], model: nn.Module, example: Tensor) -> str:
    mismatch = _channel_mismatch(model, example)
    if mismatch is not None:
        return mismatch
    stride = total_stride(model)
    good = suggested_lengths(run, example, stride)
    length = example.size(-1)
    cause = (
        f"the example length {length} is not a multiple of the model's total stride {stride}"
        if length % stride
        else f"the model does not run on every length that is a multiple of its total stride {stride}"
    )
    if good:
        fix = f"use an example length on which the model runs at once and twice as long, e.g. {' or '.join(map(str, good))}"
    else:
        fix = "make the model accept any length that is a multiple of its total stride (pad or crop by constants)"
    return f"{cause}; {fix}"


def run_model(model: nn.Module, method: str, example: Tensor) -> None:
    """Run ``model.<method>`` on the example, and refuse with a clear error where it fails."""
    run = getattr(model, method)
    try:
        with torch.no_grad():
            run(example)
    except Exception as error:
        from streamify.convert.sources import user_frame

        raise StreamingError(
            f"streamify: convert: {type(model).__name__}.{method} fails on the example {tuple(example.shape)}"
            f"{user_frame(error)}: {type(error).__name__}: {_first_line(error)}. Likely {length_advice(run, model, example)}"
        ) from error


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else ""


class _Recording(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm, garbage_collect_values=False)
        self.values: Dict[fx.Node, Any] = {}
        self.current: Optional[fx.Node] = None

    def run_node(self, n: fx.Node) -> Any:
        self.current = n
        value = super().run_node(n)
        self.values[n] = value
        return value


def run_graph(
    gm: fx.GraphModule,
    x: Tensor,
    example: Tensor,
    where: Callable[[fx.Node], str],
    model: nn.Module,
    run: Callable[[Tensor], Any],
    example_values: Optional[Dict[fx.Node, Any]] = None,
) -> Dict[fx.Node, Any]:
    """Run the captured graph on ``x``, keeping every node's value; refuse clearly where it fails.

    ``example_values`` (the values on the example, where known) let the error tell a layer sized
    to the example's length (``nn.Linear`` over time) from a length the model does not accept.
    """
    interpreter = _Recording(gm)
    try:
        with torch.no_grad():
            interpreter.run(x)
    except Exception as error:
        node = interpreter.current
        place = where(node) if node is not None else f"{type(model).__name__}"
        detail = f"{type(error).__name__}: {_first_line(error)}"
        if node is not None and _over_time(gm, node, example, example_values):
            raise StreamingError(
                f"streamify: convert: {place}: applies a linear map over the time axis (its input's last axis "
                f"is as long as the example, {example.size(-1)} frames, and it fails on {x.size(-1)} frames: "
                f"{detail}); a stream cannot feed a layer the whole signal. Apply it over channels "
                "(transpose time out of the last axis first)"
            ) from error
        raise StreamingError(
            f"streamify: convert: {place}: fails on a signal of {tuple(x.shape)} although the model runs on the "
            f"example {tuple(example.shape)} ({detail}). Likely {length_advice(run, model, example)}"
        ) from error
    return interpreter.values


def _over_time(gm: fx.GraphModule, node: fx.Node, example: Tensor, values: Optional[Dict[fx.Node, Any]]) -> bool:
    linear = False
    if node.op == "call_module":
        linear = isinstance(gm.get_submodule(str(node.target)), (nn.Linear, nn.Bilinear))
    elif node.op == "call_function":
        linear = (
            node.target in (F.linear, torch.matmul, torch.mm, torch.bmm)
            or getattr(node.target, "__name__", "") == "matmul"
        )
    elif node.op == "call_method":
        linear = node.target in ("matmul", "mm", "bmm", "__matmul__")
    if not linear or not values or not node.args or not isinstance(node.args[0], fx.Node):
        return False
    first = values.get(node.args[0])
    return isinstance(first, Tensor) and first.dim() >= 1 and first.size(-1) == example.size(-1)


__all__: Sequence[str] = ("run_graph", "run_model", "total_stride", "length_advice")
