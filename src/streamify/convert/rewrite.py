"""The rewriting core over an op-level graph: time tracked per tensor, rules looked up per op.

Each node of the captured aten graph (:mod:`streamify.convert.opcapture`) is visited in order. A node
that no time-varying tensor reaches (weights, weight norms, constants) is static: it is evaluated at
conversion and enters the streaming graph as a constant where a time op reads it. A node that a
time-varying tensor reaches is handed to the rule of its op family (:mod:`streamify.convert.rules`),
which emits streaming layers or the op itself and gives the result a :class:`TimeInfo`. An op without
a rule is refused, naming the op and its source line.
"""

from __future__ import annotations

import operator
from fractions import Fraction
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.fx as fx
from torch import Tensor, nn

from streamify.convert.opcapture import OpGraph, module_of, source_line
from streamify.convert.timeinfo import TimeInfo
from streamify.layers.base import StreamingError, StreamingModule
from streamify.layers.conv import WindowOp
from streamify.layers.shift import Crop, Delay, Pad
from streamify.timing import frames_multiple

Pairs = List[Tuple[fx.Node, TimeInfo]]


class OpRefusal(StreamingError):
    """An op of the op-level graph cannot stream. ``fallback``: the fx tracer may still convert the model
    (a capture limit, not the model's); else the message names the true cause."""

    def __init__(self, message: str, fallback: bool = False) -> None:
        super().__init__(message)
        self.fallback = fallback


def leaves(structure: Any) -> List[Any]:
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in leaves(item)]
    return [structure]


def norm_dim(dim: int, ndim: int) -> int:
    return dim + ndim if dim < 0 else dim


class Rewriter:
    """Builds the streaming graph from an :class:`OpGraph` (see the module docstring)."""

    def __init__(self, og: OpGraph, example: Tensor, probe: Tensor, allow_random: bool = False) -> None:
        self.og = og
        self.values = og.values
        self.probe_values = og.probe_values
        self.example, self.probe = example, probe
        self.allow_random = allow_random
        self.random_kept = False
        self.graph = fx.Graph()
        self.root = nn.Module()
        self.env: Dict[fx.Node, Any] = {}
        self.info: Dict[fx.Node, Any] = {}
        self.consts: Dict[Any, fx.Node] = {}
        self.streams: List[StreamingModule] = []
        self.multiples: List[int] = []
        self.input_ratios: List[Fraction] = []
        self.sources: List[str] = []
        self.current: Optional[fx.Node] = None
        self.input: Optional[fx.Node] = None
        self._batch: Optional[fx.Node] = None
        self.random: set = set()  # static nodes that carry random draws
        #: (streaming-graph node, time axis, example length) of the time tensor a rule combines static nodes with
        self.time_ref: Optional[Tuple[fx.Node, int, int]] = None

    # ------------------------------------------------------------------ messages
    def where(self, node: Optional[fx.Node]) -> str:
        if node is None:
            return "the model"
        target = node.target
        if isinstance(target, torch._ops.OpOverload):
            op = f"aten.{target.overloadpacket.__name__}"
        else:
            op = getattr(target, "__name__", str(target))
        return f"{op} in {module_of(node)} at {source_line(node)}"

    def fail(self, node: fx.Node, what: str, fix: str, fallback: bool = False) -> OpRefusal:
        return OpRefusal(f"streamify: convert: {self.where(node)}: {what}; {fix}", fallback)

    # ------------------------------------------------------------------ arguments
    def arg(self, node: fx.Node, index: int, name: str, default: Any = None) -> Any:
        """The value of an argument on the example (nodes replaced by their values)."""
        raw = node.args[index] if len(node.args) > index else node.kwargs.get(name, default)
        return fx.node.map_arg(raw, lambda n: self.values[n])

    def probe_arg(self, node: fx.Node, index: int, name: str, default: Any = None) -> Any:
        args = self.og.probe_args.get(node, node.args)
        raw = args[index] if len(args) > index else node.kwargs.get(name, default)
        return fx.node.map_arg(raw, lambda n: self.probe_values[n])

    def static(self, node: fx.Node, index: int, name: str, default: Any = None) -> Any:
        """A constant argument (weights, sizes): refused where it depends on the signal length or batch."""
        value = self.arg(node, index, name, default)
        other = self.probe_arg(node, index, name, default)
        if not _same(value, other):
            raise self.fail(
                node,
                f"its argument {name} depends on the signal length or batch size ({_short(value)} for a signal of "
                f"{tuple(self.example.shape)}, {_short(other)} for {tuple(self.probe.shape)})",
                "compute it from constants only",
                fallback=True,
            )
        return value

    def time_inputs(self, node: fx.Node) -> Pairs:
        found = []
        for arg in node.all_input_nodes:
            for item in leaves(self.info.get(arg)):
                if isinstance(item, TimeInfo):
                    found.append((arg, item))
                    break
        return found

    def batch(self) -> fx.Node:
        """The run-time batch size (read from the model's input)."""
        if self._batch is None:
            self._batch = self.graph.call_method("size", (self.input, 0))
        return self._batch

    def constant(self, value: Tensor) -> fx.Node:
        key = id(value)
        if key not in self.consts:
            name = f"const{len(self.consts)}"
            if value.is_complex():  # kept as real pairs, so that .to(dtype) casts it as a real tensor would be
                self.root.register_buffer(name, torch.view_as_real(value.detach().clone()))
                pairs = self.graph.get_attr(name)
                self.consts[key] = self.graph.call_function(torch.ops.aten.view_as_complex, (pairs,))
            else:
                self.root.register_buffer(name, value.detach().clone())
                self.consts[key] = self.graph.get_attr(name)
            self._keep = getattr(self, "_keep", []) + [value]  # ids stay unique while the rewrite runs
        return self.consts[key]

    def materialize(self, node: fx.Node) -> Any:
        """A static node as it enters the streaming graph (see :mod:`streamify.convert.rules.static`)."""
        from streamify.convert.rules.static import materialize

        return materialize(self, node)

    def new_arg(self, a: Any, replaced: Optional[Dict[fx.Node, fx.Node]] = None) -> Any:
        replaced = replaced or {}

        def remap(n: fx.Node) -> Any:
            if n.graph is self.graph:  # already a streaming-graph node (a size read at run time)
                return n
            if n in replaced:
                return replaced[n]
            if any(isinstance(i, TimeInfo) for i in leaves(self.info.get(n))):
                return self.env[n]
            return self.materialize(n)

        return fx.node.map_arg(a, remap)

    def copy(self, node: fx.Node, replaced: Optional[Dict[fx.Node, fx.Node]] = None, args: Any = None) -> fx.Node:
        """Emit ``node``'s op on the streaming tensors (its overload packet, which TorchScript compiles)."""
        target = node.target
        if isinstance(target, torch._ops.OpOverload):
            target = target.overloadpacket
        new_args = self.new_arg(node.args if args is None else args, replaced)
        new_kwargs = self.new_arg(dict(node.kwargs), replaced)
        return self.graph.call_function(target, tuple(new_args), new_kwargs)

    # ------------------------------------------------------------------ streams and delays
    def emit_stream(self, module: StreamingModule, x: Any, info: TimeInfo, ndim: int) -> Tuple[fx.Node, TimeInfo]:
        """Apply a streaming module to ``x`` (a streaming-graph node) whose time axis is ``info.dim``.

        A stream of negative delay (after a pad) lacks the first offline frames; only window ops and
        time shifts may take it, any other layer gets a delay line to delay 0 first.
        """
        if info.delay < 0 and not isinstance(module, (WindowOp, Pad, Crop, Delay)):
            x, info = self.emit_stream(Delay(-info.delay), x, info, ndim)
        module.is_root = False
        module.configure(info.delay)
        name = self.current.name if self.current is not None else "input"
        module.set_name(f"{name}:{type(module).__name__}")
        self.input_ratios.append(info.ratio)
        index = len(self.streams)
        self.streams.append(module)
        self.sources.append(self.where(self.current))
        self.multiples.append(frames_multiple(info.ratio, module.buffer_multiple))
        moved = info.dim != ndim - 1
        if moved:
            x = self.graph.call_method("movedim", (x, info.dim, -1))
        y = self.graph.call_module(f"streams.{index}", (x,))
        if moved:
            y = self.graph.call_method("movedim", (y, -1, info.dim))
        ratio = info.ratio * module.ratio
        field = None
        if info.field is not None and module.receptive_field >= 0:
            field = info.field + (module.receptive_field - 1) * info.ratio
        self.multiples.append(frames_multiple(ratio, 1))
        return y, TimeInfo(info.dim, module.delay, ratio, field)

    def unary(self, node: fx.Node, module: StreamingModule, arg: fx.Node, info: TimeInfo) -> None:
        self.env[node], self.info[node] = self.emit_stream(module, self.env[arg], info, self.values[arg].dim())

    def align(
        self, node: fx.Node, pairs: Sequence[Tuple[fx.Node, TimeInfo]]
    ) -> Tuple[Dict[fx.Node, fx.Node], TimeInfo]:
        """Delay lines so that every time input of ``node`` has the largest delay; returns replacements."""
        ratios = {info.ratio for _, info in pairs}
        if len(ratios) > 1:
            raise self.fail(
                node,
                f"combines signals at different rates {sorted(str(r) for r in ratios)} (input samples per frame)",
                "resample them to one rate before combining",
            )
        target = max([0] + [info.delay for _, info in pairs])
        fields = [info.field for _, info in pairs]
        field = None if any(f is None for f in fields) else max(fields)
        replaced: Dict[fx.Node, fx.Node] = {}
        for arg, info in pairs:
            if info.delay < target and arg not in replaced:
                replaced[arg], _ = self.emit_stream(
                    Delay(target - info.delay), self.env[arg], info, self.values[arg].dim()
                )
        return replaced, TimeInfo(pairs[0][1].dim, target, ratios.pop(), field)

    # ------------------------------------------------------------------ main loop
    def run(self) -> Tuple[fx.Graph, TimeInfo, Tensor]:
        from streamify.convert.rules import rule_of

        for node in self.og.gm.graph.nodes:
            self.current = node
            if node.op == "placeholder":
                self.input = self.env[node] = self.graph.placeholder(node.name)
                self.info[node] = TimeInfo(dim=2, delay=0, ratio=Fraction(1))
            elif node.op == "get_attr":
                self.info[node] = None
            elif node.op == "output":
                return self.finish(node)
            elif node.op != "call_function":
                raise self.fail(node, f"unexpected graph op {node.op}", "report this model", fallback=True)
            else:
                tins = self.time_inputs(node)
                if self._patterns(node, tins):
                    continue
                tins = self.time_inputs(node)
                rule = rule_of(node.target, bool(tins))
                if not tins and any(a in self.random for a in node.all_input_nodes):
                    self.random.add(node)
                if rule is None:
                    if not tins:
                        self.info[node] = fx.node.map_aggregate(self.values[node], lambda v: None)
                        continue
                    name = getattr(node.target, "__name__", str(node.target))
                    raise self.fail(
                        node,
                        f"the converter has no streaming rule for the op {name} on a tensor that varies in time",
                        "express it with ops that have one (docs/conversion.md), or teach it with streamify.register",
                        fallback=True,
                    )
                rule(self, node, tins)
        raise StreamingError("streamify: convert: the captured graph has no output")

    def _patterns(self, node: fx.Node, tins: Pairs) -> bool:
        """Patterns (:mod:`streamify.convert.rules.pattern`) among the inputs: propagated where only patterns
        and constants meet (returns True), made :class:`Periodic` streams where they meet the signal."""
        from streamify.convert.rules.pattern import Pattern, realize

        found = [a for a in node.all_input_nodes if isinstance(self.info.get(a), Pattern)]
        if not found:
            return False
        if not tins:
            self.info[node] = fx.node.map_aggregate(self.values[node], lambda v: self.info[found[0]])
            return True
        for a in found:
            realize(self, a)
        return False

    def finish(self, node: fx.Node) -> Tuple[fx.Graph, TimeInfo, Tensor]:
        results = leaves(node.args[0])
        result = results[0] if len(results) == 1 else None
        value = self.values.get(result) if isinstance(result, fx.Node) else None
        info = self.info.get(result) if isinstance(result, fx.Node) else None
        if not isinstance(value, Tensor) or not isinstance(info, TimeInfo):
            raise self.fail(
                node,
                "returns something other than one tensor that varies in time",
                "convert a method that returns one [batch, channels, frames] tensor (wrap the model if needed)",
            )
        if value.dim() != 3 or info.dim != 2:
            raise self.fail(
                node,
                f"returns shape {tuple(value.shape)} with time on axis {info.dim}",
                "return [batch, channels, frames]",
            )
        output = self.env[result]
        if info.delay < 0:  # a trailing pad: the offline output starts before the stream can
            output, info = self.emit_stream(Delay(-info.delay), output, info, 3)
        self.graph.output(output)
        return self.graph, info, value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return isinstance(a, Tensor) and isinstance(b, Tensor) and a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except Exception:
        return False


def _short(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return repr(value)


__all__ = ["OpRefusal", "Rewriter", "leaves", "norm_dim", "operator"]
