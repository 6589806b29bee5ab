"""Ops that combine tensors per frame: pointwise ops, joins, products over channels, reductions and norms.

* Pointwise ops (every aten op tagged ``pointwise``; ``where``, ``copy``, scatters over other axes): kept;
  where inputs of different delays meet, :class:`~streamify.layers.Delay` lines are inserted on the less
  delayed ones (delay: the largest); inputs at different rates are refused. A constant stretched along
  time (``emb.repeat(1, 1, T)``) enters as one broadcast frame.
* ``cat`` / ``stack`` over other axes: kept (aligned); ``cat`` along time of the signal with constant
  blocks is a pad; any other ``cat`` along time is refused.
* ``mm`` / ``bmm`` / ``matmul`` / ``linear`` / ``einsum``: kept where they contract another axis than time
  (``matmul(W, x)`` with ``W`` ``[M, C]`` and ``x`` ``[B, C, T]`` contracts channels); refused where they
  contract time or multiply two time-varying tensors along time (attention).
* Reductions, softmax, cumulative ops and norms: kept over other axes; refused over time (GroupNorm and
  InstanceNorm normalise over time).
"""

from __future__ import annotations

import torch
import torch.fx as fx
from torch import Tensor

from streamify.convert.rewrite import Pairs, Rewriter, leaves, norm_dim
from streamify.convert.rules import op_rule
from streamify.convert.rules.static import STRETCHED
from streamify.convert.timeinfo import TimeInfo, broadcast_dim
from streamify.layers.shift import Pad

aten = torch.ops.aten


def _static_operands(rw: Rewriter, node: fx.Node, dim: int, out: Tensor) -> None:
    """A constant operand must not extend along time (a table as long as the example)."""
    time_args = rw.time_inputs(node)
    timed = {a for a, _ in time_args}
    first_arg, first = time_args[0]
    rw.time_ref = (rw.env[first_arg], first.dim, rw.values[first_arg].size(first.dim))
    for arg in node.all_input_nodes:
        if arg in timed:
            continue
        new = rw.materialize(arg)
        value = rw.values[arg]
        if isinstance(new, fx.Node) and STRETCHED in new.meta or arg in rw.random:
            continue
        if isinstance(value, Tensor) and value.dim() > 0:
            k = dim - (out.dim() - value.dim())
            if 0 <= k < value.dim() and value.size(k) != 1:
                raise rw.fail(node, "combines the signal with a constant that extends along time", "make it per frame")


def pointwise(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    out = rw.values[node]
    if not isinstance(out, Tensor):
        raise rw.fail(node, "turns a time-varying tensor into a Python value", "keep it a tensor", fallback=True)
    first_arg, first = time_args[0]
    dim = broadcast_dim(first, rw.values[first_arg].dim(), out.dim())
    for arg, info in time_args[1:]:
        if broadcast_dim(info, rw.values[arg].dim(), out.dim()) != dim:
            raise rw.fail(node, "combines tensors whose time axes do not line up", "permute them to one layout first")
    _static_operands(rw, node, dim, out)
    replaced, info = rw.align(node, time_args)
    rw.env[node] = rw.copy(node, replaced)
    rw.info[node] = info.moved(dim)


op_rule(aten.where, aten.masked_fill, aten.clamp, aten.clamp_min, aten.clamp_max, aten.lerp, aten.type_as)(pointwise)


@op_rule(aten.cat, aten.stack)
def join(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    parts = node.args[0]
    first_arg, first = time_args[0]
    ndim = rw.values[first_arg].dim()
    stack = node.target.overloadpacket is aten.stack
    dim = norm_dim(rw.static(node, 1, "dim", 0), ndim + stack)
    if not stack and dim == first.dim:
        _cat_as_pad(rw, node, time_args)
        return
    if len({info.dim for _, info in time_args}) > 1:
        raise rw.fail(node, "joins tensors whose time axes differ", "permute them to one layout first")
    replaced, info = rw.align(node, time_args)
    reference = replaced.get(first_arg, rw.env[first_arg])
    timed = {a for a, _ in time_args}
    items = []
    for part in parts:
        if part in timed:
            items.append(replaced.get(part, rw.env[part]))
            continue
        value = rw.values[part]
        new = rw.materialize(part)
        if not (isinstance(new, fx.Node) and STRETCHED in new.meta) and value.size(first.dim) != 1:
            raise rw.fail(node, "joins the signal with a constant that extends along time", "make it per frame")
        sizes = [-1] * value.dim()
        sizes[first.dim] = rw.graph.call_method("size", (reference, first.dim))
        items.append(rw.graph.call_function(aten.expand, (new, sizes)))
    rw.env[node] = rw.graph.call_function(node.target.overloadpacket, (items, dim))
    rw.info[node] = info.moved(first.dim + (stack and dim <= first.dim))


def _cat_as_pad(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    """``cat([zeros, x, ones], -1)``: the signal between constant blocks along time is a pad."""
    parts = node.args[0]
    arg, info = time_args[0]
    if len(time_args) != 1 or sum(1 for p in parts if p is arg) != 1:
        raise rw.fail(node, "concatenates along time", "concatenate along channels, or stream the parts separately")
    y, out, side = rw.env[arg], info, 0
    blocks = [[], []]
    for part in parts:
        if part is arg:
            side = 1
            continue
        value, probe = rw.values[part], rw.probe_values[part]
        length = value.size(info.dim)
        first = value.flatten()[0] if value.numel() else 0.0
        if probe.size(info.dim) != length or (value.numel() and not bool((value == first).all())):
            raise rw.fail(node, "concatenates along time", "concatenate along channels, or stream the parts separately")
        if length:
            blocks[side].append((length, float(first)))
    for length, fill in reversed(blocks[0]):
        y, out = rw.emit_stream(Pad(length, 0, "constant", fill), y, out, rw.values[arg].dim())
    for length, fill in blocks[1]:
        y, out = rw.emit_stream(Pad(0, length, "constant", fill), y, out, rw.values[arg].dim())
    rw.env[node], rw.info[node] = y, out


@op_rule(aten.mm, aten.bmm, aten.matmul, aten.linear, aten.addmm, aten.baddbmm)
def product(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    name = node.target.overloadpacket.__name__
    offset = 1 if name in ("addmm", "baddbmm") else 0
    a, b = node.args[offset], node.args[offset + 1]
    va, vb, out = rw.values[a], rw.values[b], rw.values[node]
    ia, ib = rw.info.get(a), rw.info.get(b)
    if name == "linear":  # x @ W.T: contracts x's last axis
        ib = None
    if isinstance(ia, TimeInfo) and isinstance(ib, TimeInfo):
        raise rw.fail(
            node,
            "reads the whole time axis (attention): it multiplies two time-varying tensors together",
            "use windowed attention",
        )
    if isinstance(ia, TimeInfo):
        if ia.dim == va.dim() - 1:
            raise rw.fail(
                node, "multiplies along the time axis (contracts time)", "apply it over channels (time on another axis)"
            )
        dim = out.dim() - (va.dim() - ia.dim)
    else:
        if not isinstance(ib, TimeInfo) or vb.dim() < 2 or ib.dim != vb.dim() - 1:
            raise rw.fail(node, "multiplies along the time axis (contracts time)", "apply it over channels (time last)")
        dim = out.dim() - 1
    rw.env[node] = rw.copy(node)
    rw.info[node] = time_args[0][1].moved(dim)


@op_rule(aten.einsum)
def einsum(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    equation = rw.static(node, 0, "equation").replace(" ", "")
    inputs, _, output = equation.partition("->")
    specs = inputs.split(",")
    operands = node.args[1]
    letters = set()
    for spec, operand in zip(specs, operands):
        info = rw.info.get(operand)
        if isinstance(info, TimeInfo):
            if "." in spec:
                raise rw.fail(node, "uses an ellipsis over a time-varying operand", "name every axis")
            letters.add(spec[info.dim])
    if len(letters) != 1 or next(iter(letters)) not in output:
        raise rw.fail(node, "contracts or mixes time axes", "contract channels only")
    letter = letters.pop()
    for spec, operand in zip(specs, operands):
        if not isinstance(rw.info.get(operand), TimeInfo) and letter in spec:
            raise rw.fail(node, "combines the signal with a constant that extends along time", "make it per frame")
    replaced, info = rw.align(node, time_args)
    rw.env[node] = rw.copy(node, replaced)
    rw.info[node] = info.moved(output.index(letter))


_DIM_ARG = {
    "softmax": 1,
    "_softmax": 1,
    "log_softmax": 1,
    "_log_softmax": 1,
    "cumsum": 1,
    "cumprod": 1,
    "glu": 1,
    "logcumsumexp": 1,
    "argmax": 1,
    "argmin": 1,
    "max": 1,
    "min": 1,
    "median": 1,
    "linalg_vector_norm": 2,
    "norm": 2,
    "_weight_norm_interface": 2,
}


@op_rule(
    aten.sum,
    aten.mean,
    aten.amax,
    aten.amin,
    aten.var,
    aten.std,
    aten.var_mean,
    aten.std_mean,
    aten.prod,
    aten.logsumexp,
    aten.softmax,
    aten._softmax,
    aten.log_softmax,
    aten._log_softmax,
    aten.cumsum,
    aten.cumprod,
    aten.logcumsumexp,
    aten.argmax,
    aten.argmin,
    aten.max,
    aten.min,
    aten.linalg_vector_norm,
    aten.norm,
    aten.glu,
    aten.any,
    aten.all,
    aten.median,
)
def reduction(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    arg, info = time_args[0]
    x, out = rw.values[arg], rw.values[node]
    name = node.target.overloadpacket.__name__
    if name in ("max", "min") and len(node.args) > 1 and isinstance(node.args[1], fx.Node):
        pointwise(rw, node, time_args)  # max(a, b): elementwise
        return
    dim = rw.static(node, _DIM_ARG.get(name, 1), "dim", None) if len(node.args) > 1 or "dim" in node.kwargs else None
    dims = list(range(x.dim())) if dim in (None, []) else [dim] if isinstance(dim, int) else list(dim)
    dims = [norm_dim(d, x.dim()) for d in dims]
    if info.dim in dims:
        raise rw.fail(
            node, f"reduces or normalises over the time axis ({name})", "reduce over channels, or use a windowed op"
        )
    first = leaves(out)[0]
    new = info.dim if first.dim() == x.dim() else info.dim - sum(1 for d in dims if d < info.dim)
    rw.env[node] = rw.copy(node)
    rw.info[node] = tuple(info.moved(new) for _ in out) if isinstance(out, (tuple, list)) else info.moved(new)


@op_rule(aten.layer_norm, aten.native_layer_norm, aten.rms_norm)
def layer_norm(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    arg, info = time_args[0]
    x = rw.values[arg]
    shape = rw.static(node, 1, "normalized_shape")
    if arg is not node.args[0] or info.dim >= x.dim() - len(shape):
        raise rw.fail(node, "normalises over the time axis", "normalise over channels (move them last first)")
    out = rw.values[node]
    rw.env[node] = rw.copy(node)
    rw.info[node] = tuple(info for _ in out) if isinstance(out, (tuple, list)) else info


@op_rule(aten.batch_norm, aten._native_batch_norm_legit_no_training, aten.native_batch_norm)
def batch_norm(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    arg, info = time_args[0]
    training = (
        rw.arg(node, 5, "training", False)
        if node.target.overloadpacket is not aten._native_batch_norm_legit_no_training
        else False
    )
    if training or info.dim == 1 or arg is not node.args[0]:
        raise rw.fail(node, "normalises with batch statistics over time", "convert the model in eval mode")
    out = rw.values[node]
    rw.env[node] = rw.copy(node)
    rw.info[node] = tuple(info for _ in out) if isinstance(out, (tuple, list)) else info


@op_rule(aten.group_norm, aten.native_group_norm, aten.instance_norm)
def norm_over_time(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    name = node.target.overloadpacket.__name__
    what = "GroupNorm" if "group" in name else "InstanceNorm"
    raise rw.fail(node, f"reads the whole time axis ({what} normalises over time)", "use LayerNorm over channels")


@op_rule(aten.scaled_dot_product_attention, aten._scaled_dot_product_flash_attention_for_cpu)
def attention(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    """Attention over the sequence axis (-2) of q, k, v: refused where that axis (or the features') is time;
    attention within windows whose index is time (a local attention after folding time) acts per frame."""
    for arg, info in time_args:
        if info.dim >= rw.values[arg].dim() - 2:
            raise rw.fail(node, "reads the whole time axis (attention)", "use causal, windowed attention")
    pointwise(rw, node, [(a, i) for a, i in time_args])
