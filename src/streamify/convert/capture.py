"""Capture of a model's computation as a torch.fx graph, with the time layers kept whole.

Time layers of ``torch.nn`` (Conv1d, ConvTranspose1d, pools, pads, Upsample, LSTM,
GRU), streamify's own layers and TorchScript modules stay single calls (leaves);
everything else is traced down to functions and tensor methods. TorchScript
functions called from ``forward`` (e.g. a scripted Snake activation) are recorded as
opaque calls instead of failing the trace. Buffers are read as concrete tensors, so
Python control flow on them (``if self.warmed_up:``) is resolved at conversion.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, List

import torch
import torch.fx as fx
from torch import nn

from streamify.layers.base import StreamingError, StreamingModule

TIME_LAYERS = (
    nn.Conv1d,
    nn.ConvTranspose1d,
    nn.AvgPool1d,
    nn.MaxPool1d,
    nn.Upsample,
    nn.ReflectionPad1d,
    nn.ReplicationPad1d,
    nn.ConstantPad1d,
    nn.ZeroPad1d,
    nn.CircularPad1d,
    nn.LSTM,
    nn.GRU,
)


class MethodCall(nn.Module):
    """Exposes ``model.<method>`` as ``forward`` so that any method can be captured."""

    def __init__(self, model: nn.Module, method: str) -> None:
        super().__init__()
        if not callable(getattr(model, method, None)):
            raise StreamingError(f"streamify: convert: the model has no method {method!r}")
        self.model = model
        self.method = method

    def forward(self, x: torch.Tensor) -> Any:
        return getattr(self.model, self.method)(x)


class StreamTracer(fx.Tracer):
    """fx tracer that keeps time layers, streamify layers and TorchScript modules as leaves."""

    def __init__(self, autowrap_functions: tuple = ()) -> None:
        super().__init__(autowrap_functions=autowrap_functions)
        self.record_stack_traces = True

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if isinstance(m, (StreamingModule, torch.jit.ScriptModule) + TIME_LAYERS):
            return True
        if isinstance(m, MethodCall):
            return False
        return super().is_leaf_module(m, module_qualified_name)


def _script_functions(model: nn.Module) -> List[Callable]:
    """TorchScript functions reachable from the globals of the model's forward methods."""
    found: Dict[int, Callable] = {}
    for module in model.modules():
        for attr in ("forward", getattr(module, "method", "forward")):
            fn = getattr(type(module), attr, None)
            fn_globals = getattr(fn, "__globals__", None)
            if not fn_globals:
                continue
            for value in fn_globals.values():
                if isinstance(value, torch.jit.ScriptFunction):
                    found[id(value)] = value
    return list(found.values())


def capture(model: nn.Module, method: str = "forward") -> fx.GraphModule:
    """Trace ``model.<method>`` into a GraphModule.

    Raises:
        StreamingError: naming the construct fx could not trace and what to do.
    """
    root = MethodCall(model, method)
    tracer = StreamTracer(autowrap_functions=tuple(_script_functions(model)))
    try:
        graph = tracer.trace(root)
    except Exception as error:  # fx raises many types; re-raise with guidance
        raise StreamingError(
            f"streamify: convert: could not capture {type(model).__name__}.{method} with torch.fx: "
            f"{type(error).__name__}: {error}. Python control flow on the input's values or shapes cannot be "
            "captured; move it out of the method, make the submodule concerned a streamify layer, or "
            "script it with torch.jit.script so that it is kept as one call"
        ) from error
    return fx.GraphModule(root, graph)


def source_of(node: fx.Node) -> str:
    """``file:line: code`` of the user code that created ``node`` (best effort)."""
    trace = node.stack_trace or ""
    lines = [line.strip() for line in trace.strip().splitlines() if line.strip()]
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("File ") and "/torch/" not in lines[i] and "/streamify/convert/" not in lines[i]:
            code = lines[i + 1] if i + 1 < len(lines) and not lines[i + 1].startswith("File ") else ""
            return f"{lines[i]}: {code}"
    return f"graph node {node.name}"


def describe_target(node: fx.Node) -> str:
    target = node.target
    if isinstance(target, str):
        return target
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", None) or repr(target)
    if inspect.isbuiltin(target) or module.startswith("torch"):
        return f"{module}.{name}" if module else name
    return name
