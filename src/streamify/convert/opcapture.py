"""Capture at the op level: the model run on real tensors, recorded as a functional graph of aten ops.

``torch.export.export(..., strict=False)`` runs the model's Python as written (numpy scalars,
``torch.finfo``, modules built inside ``forward``, parametrizations) and records the aten ops it
executes; ``run_decompositions({})`` functionalizes the graph (in-place ops become ``slice_scatter``,
``copy`` and plain ops). The capture runs at two signal lengths, the example and a probe twice as long
with one batch item more: the graphs must execute the same ops (else a decision depends on the
length), and every constant that differs between the two depends on the signal length or batch size.
Every node keeps its value on both signals and the user's source line (``node.meta["stack_trace"]``).
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List

import torch
import torch.fx as fx
from torch import Tensor, nn

from streamify.layers.base import StreamingError


class CaptureFailed(StreamingError):
    """The op-level capture cannot record this model (the converter falls back to its fx tracer)."""


@dataclass
class OpGraph:
    """The captured graph on the example, its twin on the probe, and every node's value on each.

    Attributes:
        gm: the graph captured on the example (its nodes are the ones rewritten).
        values: each node's value on the example.
        probe_values: each node's twin's value on the probe (keyed by the example graph's node).
        probe_args: each node's twin's arguments, with nodes mapped back to the example graph's.
    """

    gm: fx.GraphModule
    values: Dict[fx.Node, Any]
    probe_values: Dict[fx.Node, Any]
    probe_args: Dict[fx.Node, tuple]


class _Method(nn.Module):
    def __init__(self, model: nn.Module, method: str) -> None:
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, x: Tensor) -> Any:
        return getattr(self.model, self.method)(x)


def export_graph(model: nn.Module, method: str, x: Tensor, flags: bool = False) -> fx.GraphModule:
    """The functional aten graph of ``model.<method>`` on ``x``; raises :class:`CaptureFailed`.

    Where export refuses Python control flow on a tensor (``if self.warmed_up:`` reads a buffer), the
    capture runs again with the model's one-element integer and boolean buffers read as Python numbers
    (flags, resolved at conversion, as the fx tracer resolves them; the verification checks the result).
    """
    if flags:
        with _flags_as_numbers(model):
            return _export(model, method, x)
    try:
        return _export(model, method, x)
    except CaptureFailed as error:
        if "data-dependent" not in str(error) and "DataDependent" not in str(error):
            raise
        with _flags_as_numbers(model):
            gm = _export(model, method, x)
        gm.meta["flags_as_numbers"] = True
        return gm


@contextlib.contextmanager
def _flags_as_numbers(model: nn.Module) -> Iterator[None]:
    saved = []
    for module in model.modules():
        for name, buffer in list(module._buffers.items()):
            if buffer is not None and buffer.numel() == 1 and not buffer.is_floating_point():
                persistent = name not in module._non_persistent_buffers_set
                saved.append((module, name, buffer, persistent))
                del module._buffers[name]
                setattr(module, name, buffer.item())
    try:
        yield
    finally:
        for module, name, buffer, persistent in saved:
            delattr(module, name)
            module.register_buffer(name, buffer, persistent=persistent)


def _export(model: nn.Module, method: str, x: Tensor) -> fx.GraphModule:
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.export.export(_Method(model, method), (x,), strict=False)
            program = program.run_decompositions({})
            gm = program.module()
    except Exception as error:  # export refuses: data-dependent control flow, script functions, ...
        text = str(error).strip()
        first = text.splitlines()[0] if text else ""
        if "data-dependent" in text or "DataDependent" in type(error).__name__:
            first = "data-dependent control flow: " + first
        raise CaptureFailed(
            f"streamify: convert: torch.export cannot capture the model ({type(error).__name__}: {first})"
        ) from error
    for node in list(gm.graph.nodes):  # export's own input checks are not part of the computation
        if node.op == "call_module" and str(node.target).startswith("_guards"):
            gm.graph.erase_node(node)
    return gm


def compute_nodes(gm: fx.GraphModule) -> List[fx.Node]:
    return [n for n in gm.graph.nodes if n.op in ("call_function", "placeholder", "output")]


class _Recording(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm, garbage_collect_values=False)
        self.values: Dict[fx.Node, Any] = {}

    def run_node(self, n: fx.Node) -> Any:
        value = super().run_node(n)
        self.values[n] = value
        return value


def record(gm: fx.GraphModule, x: Tensor) -> Dict[fx.Node, Any]:
    interpreter = _Recording(gm)
    with torch.no_grad():
        interpreter.run(x)
    return interpreter.values


def capture_ops(model: nn.Module, method: str, example: Tensor, probe: Tensor) -> OpGraph:
    """Capture ``model.<method>`` on the example and on the probe, and pair their nodes.

    Raises:
        CaptureFailed: where export refuses the model, or the two captures execute other ops (a Python
            decision depends on the length: the fx tracer then names it with its guard).
    """
    gm = export_graph(model, method, example)
    twin = export_graph(model, method, probe, flags=bool(gm.meta.get("flags_as_numbers")))
    ours = [n for n in gm.graph.nodes if n.op != "output"]
    theirs = [n for n in twin.graph.nodes if n.op != "output"]
    pairs = {a: b for a, b in zip(ours, theirs)}
    if len(ours) != len(theirs) or any(a.op != b.op or a.target != b.target for a, b in pairs.items()):
        raise CaptureFailed("streamify: convert: the model executes other ops for a signal of another length")
    values = record(gm, example)
    theirs_values = record(twin, probe)
    back = {b: a for a, b in pairs.items()}
    probe_values = {a: theirs_values.get(b) for a, b in pairs.items()}
    probe_args = {a: fx.node.map_arg(b.args, lambda n: back[n]) for a, b in pairs.items()}
    return OpGraph(gm, values, probe_values, probe_args)


def source_line(node: fx.Node) -> str:
    """The user's source line that executed ``node`` (the innermost frame outside torch and streamify)."""
    from streamify.convert.sources import source_of

    return source_of(node)


def module_path(node: fx.Node) -> str:
    """The path in the model of the innermost layer that ran ``node`` ("" for the model itself)."""
    stack = [str(path) for path, _ in (node.meta.get("nn_module_stack") or {}).values()]
    stack = [path.removeprefix("model.") for path in stack if path.startswith("model.")]
    return stack[-1] if stack else ""


def module_of(node: fx.Node) -> str:
    """The innermost layer of the model that ran ``node``: "layer 'path' (package.Class)", or "the model"."""
    stack = [(str(path), cls) for path, cls in (node.meta.get("nn_module_stack") or {}).values()]
    stack = [(path.removeprefix("model."), cls) for path, cls in stack if path.startswith("model.")]
    if not stack:
        return "the model"
    path, cls = stack[-1]
    name = cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}"
    return f"layer '{path}' ({name})"
