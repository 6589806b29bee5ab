"""The fx tracer's rules for module calls.

The methods are mixed into :class:`streamify.convert.builder.GraphRewriter`, whose helpers they use.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Callable, Tuple

import torch
import torch.fx as fx
from torch import Tensor, nn

from streamify.convert.emit import Pairs
from streamify.convert.fx_visitors import leaves
from streamify.convert.mutation import mutates
from streamify.convert.timeinfo import TimeInfo, broadcast_dim
from streamify.convert.verify import tolerance
from streamify.layers.base import StreamingError, StreamingModule
from streamify.layers.recurrent import Recurrent
from streamify.layers.torch_layers import rule_for
from streamify.runtime.state import set_streaming

if TYPE_CHECKING:
    from streamify.convert.builder import GraphRewriter


class ModuleVisitors:
    """Streamify layers and registered time layers become streaming copies (checked on the example);
    recurrences; calls without a rule are kept where they act frame by frame."""

    def visit_module(self: GraphRewriter, node: fx.Node, time_args: Pairs) -> None:
        module = self.modules[node.target]
        arg, info = time_args[0]
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
            if node.args[0] is not arg or len(time_args) > 1 or not isinstance(x, Tensor) or x.dim() != 3:
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
            self.visit_opaque(node, time_args)
            return
        y, out = self.emit_stream(streaming, self.env[arg], info, x.dim(), node.target)
        self.env[node] = y
        self.info[node] = out

    def _handle(self: GraphRewriter, node: fx.Node, handler: Any, module: nn.Module) -> StreamingModule:
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

    def _check_offline(self: GraphRewriter, node: fx.Node, streaming: StreamingModule, x: Tensor) -> None:
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

    def visit_recurrent(self: GraphRewriter, node: fx.Node, module: nn.Module, info: TimeInfo) -> None:
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

    def visit_opaque(self: GraphRewriter, node: fx.Node, time_args: Pairs) -> None:
        """A call the converter has no rule for: kept if it is shown to act frame by frame."""
        if len(time_args) > 1:
            raise self.fail(
                node,
                f"combines {len(time_args)} time-varying tensors in a call the converter has no rule for",
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
        if not self._acts_per_frame(node, time_args[0]):
            raise self.fail(
                node,
                "mixes time frames in a way the converter does not know (it does not act frame by frame on the "
                "example)",
                "express it with torch.nn layers or functions (conv, pad, slicing), or register the module that "
                "makes it with streamify.register",
            )
        self.env[node] = self.copy_node(node)
        arg, info = time_args[0]
        out_value = self.values[node]
        in_ndim = self.values[arg].dim()
        self.info[node] = fx.node.map_aggregate(
            out_value, lambda v: info.moved(broadcast_dim(info, in_ndim, v.dim())) if isinstance(v, Tensor) else None
        )

    def _acts_per_frame(self: GraphRewriter, node: fx.Node, pair: Tuple[fx.Node, TimeInfo]) -> bool:
        """Check on the example that the op commutes with cutting time into segments."""
        arg, info = pair
        full_in = self.values[arg]
        full_out = self.values[node]
        outs = [v for v in leaves(full_out) if isinstance(v, Tensor)]
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
            for got, want in zip(leaves(result), outs):
                if not isinstance(got, Tensor) or got.shape != want.narrow(out_dim, start, stop - start).shape:
                    return False
                if not torch.allclose(got, want.narrow(out_dim, start, stop - start), rtol=1e-5, atol=1e-6):
                    return False
        return True

    def _callable(self: GraphRewriter, node: fx.Node) -> Callable:
        if node.op == "call_module":
            return self.modules[node.target]
        if node.op == "call_method":
            return lambda self_, *a, **k: getattr(self_, node.target)(*a, **k)
        return node.target
