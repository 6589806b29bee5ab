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

import copy
import operator
from fractions import Fraction
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import Tensor, nn

from streamify.convert import ops
from streamify.convert.capture import describe_node, mutates, where_of
from streamify.convert.lengths import run_graph
from streamify.convert.timeinfo import TimeInfo, broadcast_dim, view_time_dim
from streamify.convert.verify import tolerance
from streamify.layers.base import StreamingError, StreamingModule
from streamify.layers.conv import AvgPool1d, Conv1d, MaxPool1d, WindowOp
from streamify.layers.conv_transpose import ConvTranspose1d
from streamify.layers.periodic import Periodic
from streamify.layers.recurrent import Recurrent
from streamify.layers.resample import upsample
from streamify.layers.shift import Crop, Delay, Pad
from streamify.layers.torch_layers import rule_for
from streamify.runtime.state import set_streaming
from streamify.timing import frames_multiple


class Unsupported(StreamingError):
    """An op of the captured graph cannot stream."""


def _leaves(structure: Any) -> List[Any]:
    if isinstance(structure, (list, tuple)):
        out: List[Any] = []
        for item in structure:
            out += _leaves(item)
        return out
    if isinstance(structure, dict):
        return _leaves(list(structure.values()))
    return [structure]


def _norm_dim(dim: int, ndim: int) -> int:
    return dim + ndim if dim < 0 else dim


class GraphRewriter:
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
        self.streams: List[StreamingModule] = []
        self.multiples: List[int] = []
        self.input_ratios: List[Fraction] = []  # model input samples per frame at each stream's input
        self.kept_modules: Dict[str, nn.Module] = {}
        #: the user's source line of each streaming layer (same order as ``streams``), for error messages
        self.sources: List[str] = []
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
            for item in _leaves(self.info.get(arg)):
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

    def emit_stream(
        self, module: StreamingModule, x: Any, info: TimeInfo, ndim: int, name: str
    ) -> Tuple[fx.Node, TimeInfo]:
        """Apply a streaming module to new-graph node ``x`` whose time axis is ``info.dim``.

        A stream of negative delay (after a pad) lacks the first offline frames; only
        window ops (their cache stands for those frames) and time shifts may take it,
        any other layer gets a delay line that brings it to delay 0 first.
        """
        if info.delay < 0 and not isinstance(module, (WindowOp, Pad, Crop, Delay)):
            x, info = self.emit_stream(Delay(-info.delay), x, info, ndim, f"{name}.pre")
        module.is_root = False
        module.configure(info.delay)
        module.set_name(f"{name.removeprefix('model.')}:{type(module).__name__}")
        self.input_ratios.append(info.ratio)
        index = len(self.streams)
        self.streams.append(module)
        self.sources.append(self.where(self.current) if self.current is not None else "the model's input")
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

    def align(
        self, node: fx.Node, pairs: Sequence[Tuple[fx.Node, TimeInfo]]
    ) -> Tuple[Dict[fx.Node, fx.Node], int, Fraction, Optional[Fraction]]:
        """Delay lines so that every time input of ``node`` has the largest delay; returns replacements."""
        ratios = {info.ratio for _, info in pairs}
        if len(ratios) > 1:
            raise self.fail(
                node,
                f"combines signals at different rates {sorted(str(r) for r in ratios)} (input samples per frame)",
                "resample them to one rate before combining",
            )
        target = max([0] + [info.delay for _, info in pairs])  # see emit_stream on negative delays
        fields = [info.field for _, info in pairs]
        field = None if any(f is None for f in fields) else max(fields)
        replaced: Dict[fx.Node, fx.Node] = {}
        for arg, info in pairs:
            if info.delay < target and arg not in replaced:
                ndim = self.values[arg].dim()
                y, _ = self.emit_stream(Delay(target - info.delay), self.env[arg], info, ndim, f"align.{node.name}")
                replaced[arg] = y
        return replaced, target, ratios.pop(), field

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
        if info.delay < 0:  # a trailing pad: the offline output starts before the stream can
            output, info = self.emit_stream(Delay(-info.delay), output, info, 3, "output")
        self.graph.output(output)
        return self.graph, info, value

    def visit(self, node: fx.Node) -> None:
        self.current = node
        tins = self.time_inputs(node)
        if tins and self._writes_pattern(node):
            self.env[node] = None  # already in the pattern's values (see visit_pattern)
            self.info[node] = None
            return
        if tins and self._mutated_in_place(node) and self.visit_pattern(node, tins):
            return
        if not tins:
            self.visit_static(node)
            return
        if node.op == "call_module":
            self.visit_module(node, tins)
        elif node.op in ("call_function", "call_method"):
            self.visit_function(node, tins)
        else:
            raise self.fail(node, f"unexpected graph op {node.op}", "report this model to the streamify developers")

    # ------------------------------------------------------------------ periodic patterns
    def _mutated_in_place(self, node: fx.Node) -> bool:
        return any(mutates(user) and user.args and user.args[0] is node for user in node.users)

    def _writes_pattern(self, node: fx.Node) -> bool:
        return mutates(node) and bool(node.args) and node.args[0] in self.patterns

    def _signal_independent(self, node: fx.Node) -> bool:
        """Whether the node's value stays the same for another signal of the example's shape."""
        if self.alt_values is None:
            generator = torch.Generator().manual_seed(4321)
            other = torch.randn(self.example.shape, generator=generator, dtype=torch.float64).to(self.example.dtype)
            self.alt_values = run_graph(self.gm, other, self.example, self.where, self.gm, self.gm)
        a, b = self.values.get(node), self.alt_values.get(node)
        return isinstance(a, Tensor) and isinstance(b, Tensor) and a.shape == b.shape and torch.equal(a, b)

    def visit_pattern(self, node: fx.Node, tins: List[Tuple[fx.Node, TimeInfo]]) -> bool:
        """A tensor written in place that does not depend on the signal's values and is periodic along time
        (``mask = ones_like(x); mask[..., 1::2, ::2] = -1``) becomes a :class:`Periodic` layer; returns False
        (the node is then treated as usual) for anything else."""
        arg, info = tins[0]
        value, probe = self.values[node], self.probe_values.get(node)
        ref = self.values[arg]
        if not isinstance(value, Tensor) or not isinstance(probe, Tensor) or value.dim() != ref.dim():
            return False
        if value.shape[info.dim] != ref.shape[info.dim] or not self._signal_independent(node):
            return False
        v, p = value.movedim(info.dim, -1), probe.movedim(info.dim, -1)
        if v.size(0) != ref.size(0) or not bool((v == v[:1]).all()) or not bool((p == p[:1]).all()):
            return False  # not batch-major or not the same for every batch item
        length = v.size(-1)
        period = next((k for k in range(1, min(64, length // 2) + 1) if torch.equal(v[..., k:], v[..., :-k])), None)
        if period is None:
            return False
        base = v[0, ..., :period]
        index = torch.arange(p.size(-1)) % period
        if p.shape[1:-1] != v.shape[1:-1] or not torch.equal(p[0], base.index_select(-1, index)):
            return False
        self.patterns.add(node)
        y, out = self.emit_stream(Periodic(base), self.env[arg], info, ref.dim(), node.name)
        self.env[node] = y
        self.info[node] = out
        return True

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

    # ------------------------------------------------------------------ modules
    def visit_module(self, node: fx.Node, tins: List[Tuple[fx.Node, TimeInfo]]) -> None:
        module = self.modules[node.target]
        arg, info = tins[0]
        x = self.values[node.args[0]] if node.args else None
        found = rule_for(module)
        if isinstance(module, StreamingModule):
            streaming = copy.deepcopy(module)
            set_streaming(streaming, True)
        elif found is not None:
            cls, rule = found
            if rule.refusal is not None:
                what, _, fix = rule.refusal.partition("; ")
                raise self.fail(node, what, fix or "replace it")
            if rule.layout == "recurrent":
                self.visit_recurrent(node, module, info)
                return
            if node.args[0] is not arg or len(tins) > 1 or not isinstance(x, Tensor) or x.dim() != 3:
                raise self.fail(
                    node, "a time layer gets other than one [batch, channels, time] input", "call it on one 3-D tensor"
                )
            if info.dim != 2:
                raise self.fail(
                    node, "gets a tensor whose time axis is not the last", "keep the [batch, channels, time] layout"
                )
            streaming = self._handle(node, rule.handler, module)
            self._check_offline(node, streaming, x)
        else:
            self.visit_opaque(node, tins)
            return
        y, out = self.emit_stream(streaming, self.env[arg], info, x.dim(), node.target)
        self.env[node] = y
        self.info[node] = out

    def _handle(self, node: fx.Node, handler: Any, module: nn.Module) -> StreamingModule:
        try:
            streaming = handler(module)
        except StreamingError as error:
            raise self.fail(node, str(error).removeprefix("streamify: "), "change the layer's configuration") from error
        if not isinstance(streaming, StreamingModule):
            raise self.fail(
                node,
                f"its registered handler returned {type(streaming).__name__}, not a streamify StreamingModule",
                "return a streaming layer from the handler given to streamify.register",
            )
        return streaming

    def _check_offline(self, node: fx.Node, streaming: StreamingModule, x: Tensor) -> None:
        """The streaming copy, run offline on the example, must compute what the module computed."""
        want = self.values[node]
        with torch.no_grad():
            try:
                got = streaming.offline(x)
            except Exception as error:
                got = error
        if isinstance(got, Tensor) and isinstance(want, Tensor) and got.shape == want.shape:
            scale = want.abs().max().item() if want.numel() else 0.0
            if want.numel() == 0 or (got - want).abs().max().item() <= tolerance(want.dtype, scale):
                return
        detail = (
            f"{type(got).__name__}: {got}"
            if isinstance(got, Exception)
            else (
                f"shape {tuple(got.shape)} instead of {tuple(want.shape)}"
                if got.shape != want.shape
                else "other values"
            )
        )
        raise self.fail(
            node,
            f"its streaming copy {type(streaming).__name__} computes something else than the layer on the example "
            f"({detail})",
            "register a handler that reproduces the layer (streamify.register), or give it no rule so that the "
            "converter traces into its forward",
        )

    def visit_recurrent(self, node: fx.Node, module: nn.Module, info: TimeInfo) -> None:
        x = self.values[node.args[0]]
        if len(node.args) > 1 and node.args[1] is not None or node.kwargs.get("hx") is not None:
            raise self.fail(node, "starts the recurrence from a given state", "let it start from zeros")
        if x.dim() != 3:
            raise self.fail(node, "gets an unbatched sequence", "pass a batched [time, batch, features] tensor")
        expected = 1 if module.batch_first else 0
        if info.dim != expected:
            raise self.fail(node, f"gets a tensor whose time axis is {info.dim}, not {expected}", "check the permutes")
        found = rule_for(module)
        assert found is not None and found[1].handler is not None
        streaming = self._handle(node, found[1].handler, module)
        assert isinstance(streaming, Recurrent)
        # emit_stream moves time last: [time, batch, ch] or [batch, time, ch] -> [batch, ch, time]
        y, out = self.emit_stream(streaming, self.env[node.args[0]], info, 3, node.target)
        self.env[node] = (y, None)
        self.info[node] = (out, None)

    def visit_opaque(self, node: fx.Node, tins: List[Tuple[fx.Node, TimeInfo]]) -> None:
        """A call the converter has no rule for: kept if it is shown to act frame by frame."""
        if len(tins) > 1:
            raise self.fail(
                node,
                f"combines {len(tins)} time-varying tensors in a call the converter has no rule for",
                "express it with torch functions the converter knows (elementwise ops, cat over channels), or "
                "register the module that makes it with streamify.register",
            )
        if mutates(node):
            raise self.fail(
                node,
                "writes in place into a tensor that varies in time (and is neither made from the signal per frame "
                "nor a pattern periodic in time)",
                "compute it out of place, per frame (torch.where, arithmetic), or with constants",
            )
        if not self._acts_per_frame(node, tins[0]):
            raise self.fail(
                node,
                "mixes time frames in a way the converter does not know (it does not act frame by frame on the "
                "example)",
                "express it with torch.nn layers or functions (conv, pad, slicing), or register the module that "
                "makes it with streamify.register",
            )
        self.env[node] = self.copy_node(node)
        arg, info = tins[0]
        out_value = self.values[node]
        in_ndim = self.values[arg].dim()
        self.info[node] = fx.node.map_aggregate(
            out_value, lambda v: info.moved(broadcast_dim(info, in_ndim, v.dim())) if isinstance(v, Tensor) else None
        )

    def _acts_per_frame(self, node: fx.Node, pair: Tuple[fx.Node, TimeInfo]) -> bool:
        """Check on the example that the op commutes with cutting time into segments."""
        arg, info = pair
        full_in = self.values[arg]
        full_out = self.values[node]
        outs = [v for v in _leaves(full_out) if isinstance(v, Tensor)]
        length = full_in.size(info.dim)
        if length < 4 or not outs:
            return False
        out_dim = broadcast_dim(info, full_in.dim(), outs[0].dim())
        if any(o.dim() <= out_dim or o.size(out_dim) != length for o in outs):
            return False
        fn = self._callable(node)
        for start, stop in ((0, length // 2), (length // 3, length)):
            piece = full_in.narrow(info.dim, start, stop - start)

            def swap(a: Any, piece: Tensor = piece) -> Any:
                return piece if a is arg else self.values[a]

            args = fx.node.map_arg(node.args, swap)
            kwargs = fx.node.map_arg(node.kwargs, swap)
            try:
                with torch.no_grad():
                    result = fn(*args, **kwargs)
            except Exception:
                return False
            for got, want in zip(_leaves(result), outs):
                if not isinstance(got, Tensor) or got.shape != want.narrow(out_dim, start, stop - start).shape:
                    return False
                if not torch.allclose(got, want.narrow(out_dim, start, stop - start), rtol=1e-5, atol=1e-6):
                    return False
        return True

    def _callable(self, node: fx.Node) -> Callable:
        if node.op == "call_module":
            return self.modules[node.target]
        if node.op == "call_method":
            return lambda self_, *a, **k: getattr(self_, node.target)(*a, **k)
        return node.target

    # ------------------------------------------------------------------ functions and methods
    def visit_function(self, node: fx.Node, tins: List[Tuple[fx.Node, TimeInfo]]) -> None:
        target = node.target
        is_method = node.op == "call_method"
        if self._is_random(node):
            if not self.allow_random:
                raise self.fail(node, "draws random numbers", "pass allow_random=True to convert() to keep the noise")
            self.random_kept = True
            return self.visit_elementwise(node, tins)  # noise shaped like its input, drawn per frame
        if not is_method and target in ops.WHOLE_AXIS:
            raise self.fail(node, "reads the whole time axis", ops.WHOLE_AXIS[target])
        handler = ops.handler_of(node.op, target)
        if handler is not None:
            return getattr(self, handler)(node, tins)
        return self.visit_opaque(node, tins)

    def _single_time_input(
        self, node: fx.Node, tins: List[Tuple[fx.Node, TimeInfo]], what: str
    ) -> Tuple[fx.Node, TimeInfo]:
        first = node.args[0] if node.args else None
        if len(tins) != 1 or tins[0][0] is not first:
            raise self.fail(node, f"{what} with time-varying weights or several time inputs", "use constant weights")
        return tins[0]

    def _const(self, node: fx.Node, index: int, name: str, default: Any) -> Any:
        if len(node.args) > index:
            return self.value(node.args[index])
        return self.value(node.kwargs.get(name, default))

    def visit_conv(self, node: fx.Node, tins: List[Tuple[fx.Node, TimeInfo]]) -> None:
        arg, info = self._single_time_input(node, tins, "a convolution")
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

    def visit_conv_transpose(self, node: fx.Node, tins: List[Tuple[fx.Node, TimeInfo]]) -> None:
        arg, info = self._single_time_input(node, tins, "a transposed convolution")
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

    def visit_pad(self, node: fx.Node, tins: List[Tuple[fx.Node, TimeInfo]]) -> None:
        arg, info = self._single_time_input(node, tins, "a pad")
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

    def visit_interpolate(self, node: fx.Node, tins: List[Tuple[fx.Node, TimeInfo]]) -> None:
        arg, info = self._single_time_input(node, tins, "an interpolation")
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

    def visit_pool(self, node: fx.Node, tins: List[Tuple[fx.Node, TimeInfo]]) -> None:
        arg, info = self._single_time_input(node, tins, "a pool")
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

    def _require_last(self, node: fx.Node, arg: fx.Node, info: TimeInfo) -> None:
        x = self.values[arg]
        if x.dim() != 3 or info.dim != 2:
            raise self.fail(
                node, "gets a tensor that is not [batch, channels, time]", "keep that layout for time layers"
            )

    def _emit_unary(self, node: fx.Node, module: StreamingModule, arg: fx.Node, info: TimeInfo) -> None:
        y, out = self.emit_stream(module, self.env[arg], info, self.values[arg].dim(), node.name)
        self.env[node] = y
        self.info[node] = out

    # ------------------------------------------------------------------ time-axis slicing
    def visit_getitem(self, node: fx.Node, tins: List[Tuple[fx.Node, TimeInfo]]) -> None:
        container, index = node.args
        structure = self.env[container]
        if (
            isinstance(structure, tuple)
            and isinstance(self.info[container], tuple)
            and not isinstance(structure, fx.Node)
        ):
            # result of a recurrent layer: (output, state)
            chosen = structure[index]
            if chosen is None and not node.users:
                self.env[node] = None
                self.info[node] = None
                return
            if chosen is None:
                raise self.fail(node, "reads the final state of a recurrent layer", "use only its output sequence")
            self.env[node] = chosen
            self.info[node] = self.info[container][index]
            return
        info = self.info[container]
        if not isinstance(info, TimeInfo):  # tuple/list produced by a split: pick the item
            self.env[node] = self.copy_node(node)
            self.info[node] = info[self.value(index)] if isinstance(info, (list, tuple)) else None
            return
        x = self.values[container]
        items = list(index) if isinstance(index, tuple) else [index]
        dims = self._index_dims(node, x.dim(), items)
        new_items = list(items)
        crop = None
        out_dim = None
        position = 0
        consumed = sum(1 for it in items if it is not None and it is not Ellipsis)
        for k, item in enumerate(items):
            if item is None:
                position += 1
                continue
            if item is Ellipsis:
                position += x.dim() - consumed
                continue
            if dims[k] == info.dim:
                if not isinstance(item, slice):
                    raise self.fail(node, "picks single time frames", "slice a range of frames instead")
                crop = self._time_slice(node, x.size(info.dim), item, k)
                new_items[k] = slice(None)
                out_dim = position
            if isinstance(item, slice):
                position += 1
        out_value = self.values[node]
        if out_dim is None:
            out_dim = self._locate_time(node, x, out_value, info)
        new_index = tuple(new_items) if isinstance(index, tuple) else new_items[0]
        remapped = fx.node.map_arg(new_index, lambda n: self.env[n])
        y = self.graph.call_function(operator.getitem, (self.env[container], remapped))
        out = info.moved(out_dim)
        if crop is not None and crop != (0, 0):
            y, out = self.emit_stream(Crop(*crop), y, out, out_value.dim(), node.name)
        self.env[node] = y
        self.info[node] = out

    def _index_dims(self, node: fx.Node, ndim: int, items: List[Any]) -> List[Optional[int]]:
        """Input dimension indexed by each item of an index tuple (None for None items)."""
        consumed = sum(1 for it in items if it is not None and it is not Ellipsis)
        dims: List[Optional[int]] = []
        d = 0
        for item in items:
            if item is None:
                dims.append(None)
            elif item is Ellipsis:
                dims.append(None)
                d += ndim - consumed
            else:
                if isinstance(self.value(item), Tensor):
                    raise self.fail(node, "indexes with a tensor", "slice time with integers")
                dims.append(d)
                d += 1
        return dims

    def _locate_time(self, node: fx.Node, x: Tensor, out: Tensor, info: TimeInfo) -> int:
        """Time axis of an indexing result that kept the time axis whole (found by size)."""
        length = x.size(info.dim)
        candidates = [d for d in range(out.dim()) if out.size(d) == length]
        if len(candidates) != 1:
            raise self.fail(node, "indexes in a way that hides where the time axis goes", "slice time explicitly")
        return candidates[0]

    def _time_slice(self, node: fx.Node, length: int, item: slice, k: int) -> Tuple[int, int]:
        value = self.value(item)
        start, stop, step = value.start, value.stop, value.step
        if step not in (None, 1):
            raise self.fail(node, "takes every n-th frame", "decimate with a strided conv or pool")
        start_n, stop_n, _ = slice(start, stop).indices(length)
        raw = node.args[1]
        raw_item = raw[k] if isinstance(raw, tuple) else raw
        start_node = raw_item.start if isinstance(raw_item, slice) else None
        if isinstance(start_node, fx.Node) and self.length_dependent(start_node):
            raise self.fail(
                node, "cuts the start of the signal by an amount that depends on its length", "crop by a constant"
            )
        if isinstance(start, int) and start < 0:
            raise self.fail(node, "keeps only the end of the signal", "crop from the start by a constant")
        return start_n, max(length - stop_n, 0)

    def visit_narrow(self, node: fx.Node, tins: List[Tuple[fx.Node, TimeInfo]]) -> None:
        arg, info = self._single_time_input(node, tins, "narrow")
        x = self.values[arg]
        dim = _norm_dim(self._const(node, 1, "dim", None), x.dim())
        if dim != info.dim:
            self.env[node] = self.copy_node(node)
            self.info[node] = info
            return
        start = self._const(node, 2, "start", None)
        length = self._const(node, 3, "length", None)
        start_arg = node.args[2] if len(node.args) > 2 else node.kwargs.get("start")
        if isinstance(start_arg, fx.Node) and self.length_dependent(start_arg):
            raise self.fail(
                node, "cuts the start of the signal by an amount that depends on its length", "crop by a constant"
            )
        crop = Crop(start, x.size(dim) - start - length)
        self._emit_unary(node, crop, arg, info)

    # ------------------------------------------------------------------ shapes and layouts
    def visit_size(self, node: fx.Node, tins: List[Tuple[fx.Node, TimeInfo]]) -> None:
        self.env[node] = self.copy_node(node)
        self.info[node] = None

    def visit_permute(self, node: fx.Node, tins: List[Tuple[fx.Node, TimeInfo]]) -> None:
        """permute, transpose, movedim, swapaxes, mT: follow the time axis on a meta tensor of distinct sizes."""
        arg, info = tins[0]
        ndim = self.values[arg].dim()
        sizes = [2 + d for d in range(ndim)]
        probe = torch.empty(sizes, device="meta")
        rest = [self.value(a) for a in node.args[1:]]
        kwargs = self.value(dict(node.kwargs))
        if node.op == "call_method":
            moved = getattr(probe, node.target) if node.target == "mT" else getattr(probe, node.target)(*rest, **kwargs)
        else:
            moved = node.target(probe, *rest, **kwargs)
        self.env[node] = self.copy_node(node)
        self.info[node] = info.moved(list(moved.shape).index(sizes[info.dim]))

    def visit_view(self, node: fx.Node, tins: List[Tuple[fx.Node, TimeInfo]]) -> None:
        arg, info = tins[0]
        if len(tins) > 1:
            raise self.fail(node, "reshapes with the shape of another time tensor", "reshape with explicit sizes")
        x = self.values[arg]
        y = self.values[node]
        new_dim = view_time_dim(list(x.shape), list(y.shape), info.dim)
        probe_dim = view_time_dim(list(self.probe_values[arg].shape), list(self.probe_values[node].shape), info.dim)
        if new_dim is None or probe_dim != new_dim:
            raise self.fail(node, "merges or splits the time axis with another axis", "keep time as an axis of its own")
        self.env[node] = self.copy_node(node)
        self.info[node] = info.moved(new_dim)

    # ------------------------------------------------------------------ combining
    def visit_elementwise(self, node: fx.Node, tins: List[Tuple[fx.Node, TimeInfo]]) -> None:
        out = self.values[node]
        if not isinstance(out, Tensor):
            self.env[node] = self.copy_node(node)
            self.info[node] = None
            return
        self._check_static_operands(node, tins, out)
        for arg in node.all_input_nodes:
            if not isinstance(self.values[arg], Tensor) and self.length_dependent(arg):
                raise self.fail(node, "computes with the signal length", "use only constants and per-frame values")
        replaced, delay, ratio, field = self.align(node, tins)
        first_arg, first_info = tins[0]
        dim = broadcast_dim(first_info, self.values[first_arg].dim(), out.dim())
        for arg, info in tins[1:]:
            if broadcast_dim(info, self.values[arg].dim(), out.dim()) != dim:
                raise self.fail(
                    node, "combines tensors whose time axes do not line up", "permute them to one layout first"
                )
        self.env[node] = self.copy_node(node, replaced)
        self.info[node] = TimeInfo(dim, delay, ratio, field)

    def _check_static_operands(self, node: fx.Node, tins: List[Tuple[fx.Node, TimeInfo]], out: Tensor) -> None:
        """A constant operand must not extend along time (e.g. a positional table of the signal's length)."""
        first_arg, first_info = tins[0]
        dim = broadcast_dim(first_info, self.values[first_arg].dim(), out.dim())
        timed = {a for a, _ in tins}
        for arg in node.all_input_nodes:
            if arg in timed:
                continue
            value = self.values[arg]
            probe = self.probe_values.get(arg)
            if (
                isinstance(value, Tensor)
                and isinstance(probe, Tensor)
                and probe.shape == value.shape
                and not self.allow_random
                and not torch.equal(probe, value)
            ):
                raise self.fail(
                    node,
                    "computes with a tensor made from the signal's length or batch size (it differs between a signal "
                    f"of {self.example_shape} and one of {self.probe_shape})",
                    "use only constants and per-frame values",
                )
            if isinstance(value, Tensor) and value.dim() > 0:
                k = dim - (out.dim() - value.dim())
                if 0 <= k < value.dim() and value.size(k) != 1:
                    if self.allow_random and self._is_random(arg) and self._follows_length(arg, k, node, dim):
                        continue  # noise drawn at the signal's length (e.g. randn(B, 1, T)): drawn per buffer
                    raise self.fail(
                        node, "combines the signal with a constant that extends along time", "make it per frame"
                    )

    def _follows_length(self, arg: fx.Node, k: int, node: fx.Node, dim: int) -> bool:
        """Whether axis ``k`` of ``arg`` is as long as the time axis ``dim`` of ``node``, for both signal lengths."""
        value, probe = self.values[arg], self.probe_values.get(arg)
        out, probe_out = self.values[node], self.probe_values.get(node)
        if not all(isinstance(t, Tensor) for t in (probe, out, probe_out)):
            return False
        return value.size(k) == out.size(dim) and probe.size(k) == probe_out.size(dim) != out.size(dim)

    def visit_join(self, node: fx.Node, tins: List[Tuple[fx.Node, TimeInfo]]) -> None:
        out = self.values[node]
        tensors = self.value(node.args[0])
        dim = self._const(node, 1, "dim", 0)
        first_arg, first_info = tins[0]
        in_ndim = self.values[first_arg].dim()
        is_stack = node.target is torch.stack
        if not is_stack and _norm_dim(dim, in_ndim) == first_info.dim:
            if self._join_as_pad(node, tins):
                return
            raise self.fail(
                node, "concatenates along time", "concatenate along channels, or stream the parts separately"
            )
        if len(tins) != len([t for t in tensors if isinstance(t, Tensor)]):
            raise self.fail(
                node, "joins the signal with constant tensors", "broadcast constants in an elementwise op instead"
            )
        replaced, delay, ratio, field = self.align(node, tins)
        time_dim = first_info.dim
        if is_stack and _norm_dim(dim, in_ndim + 1) <= time_dim:
            time_dim += 1
        if len({info.dim for _, info in tins}) > 1:
            raise self.fail(node, "joins tensors whose time axes differ", "permute them to one layout first")
        self.env[node] = self.copy_node(node, replaced)
        self.info[node] = TimeInfo(time_dim, delay, ratio, field)
        del out

    def _join_as_pad(self, node: fx.Node, tins: List[Tuple[fx.Node, TimeInfo]]) -> bool:
        """A concatenation along time of one signal with constant blocks (``torch.cat([zeros, x], -1)``,
        a hand-written pad) becomes constant pads; returns False if it is not one."""
        parts = node.args[0]
        if len(tins) != 1 or not isinstance(parts, (list, tuple)):
            return False
        arg, info = tins[0]
        if sum(1 for p in parts if p is arg) != 1:
            return False
        x = self.values[arg]
        sides: List[List[Tuple[int, float]]] = [[], []]
        side = 0
        for part in parts:
            if part is arg:
                side = 1
                continue
            value = self.value(part)
            probe = fx.node.map_arg(part, lambda n: self.probe_values[n])
            if not isinstance(value, Tensor) or not isinstance(probe, Tensor) or value.dim() != x.dim():
                return False
            length = value.size(info.dim)
            if probe.size(info.dim) != length:  # a block as long as the signal is not a pad
                return False
            if length == 0:
                continue
            first = value.flatten()[0]
            if not bool((value == first).all()):
                return False
            sides[side].append((length, float(first)))
        y, out = self.env[arg], info
        for side_index, blocks in enumerate(sides):
            for length, fill in reversed(blocks) if side_index == 0 else blocks:  # innermost first
                left, right = (length, 0) if side_index == 0 else (0, length)
                y, out = self.emit_stream(Pad(left, right, "constant", fill), y, out, x.dim(), node.name)
        self.env[node] = y
        self.info[node] = out
        return True

    def visit_split(self, node: fx.Node, tins: List[Tuple[fx.Node, TimeInfo]]) -> None:
        arg, info = self._single_time_input(node, tins, "a split")
        x = self.values[arg]
        name = node.target if isinstance(node.target, str) else node.target.__name__
        default = 0
        dim = self._const(node, 2 if name != "unbind" else 1, "dim", default)
        dim = _norm_dim(dim, x.dim())
        if dim == info.dim:
            raise self.fail(node, "splits along time", "split along channels")
        out_dim = info.dim - 1 if name == "unbind" and dim < info.dim else info.dim
        self.env[node] = self.copy_node(node)
        self.info[node] = tuple(info.moved(out_dim) for _ in self.values[node])

    def visit_dim_op(self, node: fx.Node, tins: List[Tuple[fx.Node, TimeInfo]]) -> None:
        arg, info = self._single_time_input(node, tins, "a reduction")
        x = self.values[arg]
        name = node.target if isinstance(node.target, str) else node.target.__name__
        if node.target is F.normalize:
            dim = self._const(node, 2, "dim", 1)
        elif node.target is F.glu:
            dim = self._const(node, 1, "dim", -1)
        elif node.target is torch.linalg.vector_norm or name == "norm":
            dim = self._const(node, 2, "dim", None)
        else:
            dim = self._const(node, 1, "dim", None)
        dims = list(range(x.dim())) if dim is None else [dim] if isinstance(dim, int) else list(dim)
        dims = [_norm_dim(d, x.dim()) for d in dims]
        if info.dim in dims:
            raise self.fail(
                node, "reduces or normalises over the time axis", "reduce over channels, or use a windowed op"
            )
        out = self.values[node]
        first = out[0] if isinstance(out, tuple) else out
        if isinstance(first, Tensor) and first.dim() == x.dim():
            new_dim = info.dim
        else:
            new_dim = info.dim - sum(1 for d in dims if d < info.dim)
        self.env[node] = self.copy_node(node)
        moved = info.moved(new_dim)
        self.info[node] = tuple(moved for _ in out) if isinstance(out, tuple) else moved

    def visit_last_dim_op(self, node: fx.Node, tins: List[Tuple[fx.Node, TimeInfo]]) -> None:
        """Ops that act on the last axis (linear, matmul, layer norm) or on channels (batch norm)."""
        arg, info = tins[0]
        x = self.values[arg]
        out = self.values[node]
        if node.target is F.batch_norm:
            training = self._const(node, 5, "training", False)
            if training or info.dim == 1:
                raise self.fail(node, "normalises with batch statistics over time", "convert the model in eval mode")
        elif node.target is F.layer_norm:
            shape = self._const(node, 1, "normalized_shape", None)
            if info.dim >= x.dim() - len(shape):
                raise self.fail(node, "normalises over the time axis", "normalise over channels (move them last first)")
        else:
            if len(tins) > 1 or info.dim == x.dim() - 1 or (node.args[0] is not arg):
                raise self.fail(node, "multiplies along the time axis", "apply it over channels")
        self.env[node] = self.copy_node(node)
        self.info[node] = info.moved(broadcast_dim(info, x.dim(), out.dim()))
