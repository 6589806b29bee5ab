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
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.fx as fx
from torch import Tensor, nn

from streamify.convert.emit import Pairs, StreamEmitter
from streamify.convert.opcapture import OpGraph, module_of, module_path, source_line
from streamify.convert.timeinfo import TimeInfo
from streamify.layers.base import StreamingError, StreamingModule


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


class Rewriter(StreamEmitter):
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
        self._init_streams()
        self.current: Optional[fx.Node] = None
        self.input: Optional[fx.Node] = None
        self._batch: Optional[fx.Node] = None
        self.random: set = set()  # static nodes that carry random draws
        self._names: set = set()  # names given to streaming layers
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
    def layer_name(self, module: StreamingModule, name: Optional[str] = None) -> str:
        """``path:Class``: the path of the model's layer that made it (else the op's node), unique."""
        node = self.current
        base = (module_path(node) or node.name) if node is not None else "input"
        name, k = f"{base}:{type(module).__name__}", 1
        while name in self._names:
            k += 1
            name = f"{base}.{k}:{type(module).__name__}"
        self._names.add(name)
        return name

    def unary(self, node: fx.Node, module: StreamingModule, arg: fx.Node, info: TimeInfo) -> None:
        self.env[node], self.info[node] = self.emit_stream(module, self.env[arg], info, self.values[arg].dim())

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
                time_args = self.time_inputs(node)
                if self._patterns(node, time_args):
                    continue
                time_args = self.time_inputs(node)
                rule = rule_of(node.target, bool(time_args))
                if not time_args and any(a in self.random for a in node.all_input_nodes):
                    self.random.add(node)
                if rule is None:
                    if not time_args:
                        self.info[node] = fx.node.map_aggregate(self.values[node], lambda v: None)
                        continue
                    name = getattr(node.target, "__name__", str(node.target))
                    raise self.fail(
                        node,
                        f"the converter has no streaming rule for the op {name} on a tensor that varies in time",
                        "express it with ops that have one (docs/conversion.md), or teach it with streamify.register",
                        fallback=True,
                    )
                rule(self, node, time_args)
        raise StreamingError("streamify: convert: the captured graph has no output")

    def _patterns(self, node: fx.Node, time_args: Pairs) -> bool:
        """Patterns (:mod:`streamify.convert.rules.pattern`) among the inputs: propagated where only patterns
        and constants meet (returns True), made :class:`Periodic` streams where they meet the signal."""
        from streamify.convert.rules.pattern import Pattern, realize

        found = [a for a in node.all_input_nodes if isinstance(self.info.get(a), Pattern)]
        if not found:
            return False
        if not time_args:
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
        output, info = self.emit_catch_up(output, info, 3, "output")  # after a trailing pad
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
