"""Rewrite of a captured graph into a streaming graph.

The converter walks the captured graph in order with the values that the example
(and a second, longer probe signal) produce at every node. For each tensor it
derives a :class:`TimeInfo` (time axis, delay, rate); each node is then re-emitted:

* time layers and time functions (convs, transposed convs, pools, pads, upsampling,
  recurrences, time-axis slices) become streaming layers configured with the delay
  of the stream that feeds them;
* elementwise ops, joins and splits over other axes, reductions over other axes and
  layout changes are kept; where inputs of different delays meet, delay lines are
  inserted on the less delayed ones;
* integers read from shapes are kept as run-time computations; those that depend
  on the signal length (they differ between example and probe) may only bound
  time-axis crops, from the end, or size the time axis of a reshape;
* anything else that involves time is refused with the op, its source line and a fix.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Dict, List, Optional, Tuple

import torch.fx as fx
import torch.nn.functional as F
from torch import Tensor, nn

from streamify.convert import ops
from streamify.convert.emit import StreamEmitter
from streamify.convert.fx_visitors import leaves
from streamify.convert.fx_visitors.combine import CombineVisitors
from streamify.convert.fx_visitors.layout import LayoutVisitors
from streamify.convert.fx_visitors.modules import ModuleVisitors
from streamify.convert.fx_visitors.patterns import PatternVisitors
from streamify.convert.fx_visitors.slicing import SliceVisitors
from streamify.convert.fx_visitors.windows import WindowVisitors
from streamify.convert.sources import describe_node, where_of
from streamify.convert.timeinfo import TimeInfo
from streamify.convert.trial_runs import run_graph
from streamify.layers.base import StreamingError, StreamingModule


class Unsupported(StreamingError):
    """An op of the captured graph cannot stream."""


class GraphRewriter(
    StreamEmitter, PatternVisitors, ModuleVisitors, WindowVisitors, SliceVisitors, LayoutVisitors, CombineVisitors
):
    """Builds the streaming graph from a captured one (see the module docstring)."""

    def __init__(
        self,
        gm: fx.GraphModule,
        example: Tensor,
        probe: Tensor,
        allow_random: bool = False,
        model: Optional[nn.Module] = None,
        method: str = "forward",
    ) -> None:
        self.gm = gm
        self.modules = dict(gm.named_modules())
        if model is not None:  # the real modules, containers included, for error messages
            self.named = dict(self.modules)
            self.named.update({("model." + k if k else "model"): v for k, v in model.named_modules()})
        else:
            self.named = self.modules
        model = gm if model is None else model
        run = getattr(model, method, gm)
        self.values = run_graph(gm, example, example, self.where, model, run)
        self.probe_values = run_graph(gm, probe, example, self.where, model, run, example_values=self.values)
        self.example_shape, self.probe_shape = tuple(example.shape), tuple(probe.shape)
        self.example = example
        self.alt_values: Optional[Dict[fx.Node, Any]] = None  # on another signal of the example's shape
        self.patterns: set = set()  # nodes emitted as Periodic layers
        self.allow_random = allow_random
        self.random_kept = False  # a random op was kept (allow_random): the stream cannot be verified
        self.graph = fx.Graph()
        self.env: Dict[fx.Node, Any] = {}
        self.info: Dict[fx.Node, Any] = {}
        self._init_streams()
        self.kept_modules: Dict[str, nn.Module] = {}
        self.current: Optional[fx.Node] = None

    # ------------------------------------------------------------------ helpers
    def fail(self, node: fx.Node, what: str, fix: str) -> Unsupported:
        return Unsupported(f"streamify: convert: {self.where(node)}: {what}; {fix}")

    def describe(self, node: fx.Node) -> str:
        return describe_node(self.named, node)

    def where(self, node: fx.Node) -> str:
        return where_of(self.named, node)

    def value(self, arg: Any) -> Any:
        return fx.node.map_arg(arg, lambda n: self.values[n])

    def time_inputs(self, node: fx.Node) -> List[Tuple[fx.Node, TimeInfo]]:
        found = []
        for arg in node.all_input_nodes:
            for item in leaves(self.info.get(arg)):
                if isinstance(item, TimeInfo):
                    found.append((arg, item))
                    break
        return found

    def length_dependent(self, node: fx.Node) -> bool:
        """Whether an integer-valued node changes with the signal length."""
        a, b = self.values.get(node), self.probe_values.get(node)
        try:
            return bool(a != b)
        except Exception:
            return False

    def layer_name(self, module: StreamingModule, name: Optional[str]) -> str:
        return f"{(name or 'input').removeprefix('model.')}:{type(module).__name__}"

    def copy_node(self, node: fx.Node, replaced: Optional[Dict[fx.Node, fx.Node]] = None) -> fx.Node:
        replaced = replaced or {}

        def remap(n: fx.Node) -> fx.Node:
            return replaced.get(n, self.env[n])

        args = fx.node.map_arg(node.args, remap)
        kwargs = fx.node.map_arg(node.kwargs, remap)
        if node.op == "call_module":
            self.kept_modules[node.target] = self.modules[node.target]
        return self.graph.create_node(node.op, node.target, args, kwargs, node.name)

    # ------------------------------------------------------------------ main loop
    def run(self) -> Tuple[fx.Graph, Any]:
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                self.env[node] = self.graph.placeholder(node.name)
                self.info[node] = TimeInfo(dim=2, delay=0, ratio=Fraction(1))
            elif node.op == "get_attr":
                self.env[node] = self.graph.get_attr(node.target)
                self.info[node] = None
            elif node.op == "output":
                self.current = node
                return self.finish(node)
            else:
                self.visit(node)
        raise StreamingError("streamify: convert: the captured graph has no output")

    def finish(self, node: fx.Node) -> Tuple[fx.Graph, TimeInfo, Tensor]:
        """Emit the output: one ``[batch, channels, frames]`` tensor, delayed to a non-negative delay."""
        result = node.args[0]
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
                "return [batch, channels, frames] with time last",
            )
        output = self.env[result]
        output, info = self.emit_catch_up(output, info, 3, "output")  # after a trailing pad
        self.graph.output(output)
        return self.graph, info, value

    def visit(self, node: fx.Node) -> None:
        self.current = node
        time_args = self.time_inputs(node)
        if time_args and self._writes_pattern(node):
            self.env[node] = None  # already in the pattern's values (see visit_pattern)
            self.info[node] = None
            return
        if time_args and self._mutated_in_place(node) and self.visit_pattern(node, time_args):
            return
        if not time_args:
            self.visit_static(node)
            return
        if node.op == "call_module":
            self.visit_module(node, time_args)
        elif node.op in ("call_function", "call_method"):
            self.visit_function(node, time_args)
        else:
            raise self.fail(node, f"unexpected graph op {node.op}", "report this model to the streamify developers")

    def visit_static(self, node: fx.Node) -> None:
        """A node that no time-varying tensor reaches: weights, constants, shape arithmetic."""
        if self._is_random(node):
            if not self.allow_random:
                raise self.fail(node, "draws random numbers", "pass allow_random=True to convert() to keep the noise")
            self.random_kept = True
        self.env[node] = self.copy_node(node)
        value = self.values[node]
        self.info[node] = fx.node.map_aggregate(value, lambda v: None)

    def _is_random(self, node: fx.Node) -> bool:
        if node.op == "call_function":
            if node.target in (F.dropout, F.alpha_dropout, F.feature_alpha_dropout, F.dropout1d):
                return bool(node.kwargs.get("training", node.args[2] if len(node.args) > 2 else True))
            return node.target in ops.RANDOM_FUNCTIONS
        return node.op == "call_method" and node.target in ops.RANDOM_METHODS

    # ------------------------------------------------------------------ functions and methods
    def visit_function(self, node: fx.Node, time_args: List[Tuple[fx.Node, TimeInfo]]) -> None:
        target = node.target
        is_method = node.op == "call_method"
        if self._is_random(node):
            if not self.allow_random:
                raise self.fail(node, "draws random numbers", "pass allow_random=True to convert() to keep the noise")
            self.random_kept = True
            return self.visit_elementwise(node, time_args)  # noise shaped like its input, drawn per frame
        if not is_method and target in ops.WHOLE_AXIS:
            raise self.fail(node, "reads the whole time axis", ops.WHOLE_AXIS[target])
        handler = ops.handler_of(node.op, target)
        if handler is not None:
            return getattr(self, handler)(node, time_args)
        return self.visit_opaque(node, time_args)

    def _single_time_input(
        self, node: fx.Node, time_args: List[Tuple[fx.Node, TimeInfo]], what: str
    ) -> Tuple[fx.Node, TimeInfo]:
        first = node.args[0] if node.args else None
        if len(time_args) != 1 or time_args[0][0] is not first:
            raise self.fail(node, f"{what} with time-varying weights or several time inputs", "use constant weights")
        return time_args[0]

    def _const(self, node: fx.Node, index: int, name: str, default: Any) -> Any:
        if len(node.args) > index:
            return self.value(node.args[index])
        return self.value(node.kwargs.get(name, default))
