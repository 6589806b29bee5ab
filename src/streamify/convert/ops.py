"""The rule table of functions and tensor methods: how the converter treats each op of a captured graph.

Classes of ops (elementwise, joins, splits, reductions, layout changes, ...) are listed below;
:data:`FUNCTION_RULES` and :data:`METHOD_RULES` map each op to the converter's handler (a
``GraphRewriter.visit_*`` method), and :data:`WHOLE_AXIS` maps the ops that cannot stream to their
refusal (cause and fix). Module classes have their own table, :data:`streamify.layers.torch_layers.MODULE_RULES`,
which users extend with :func:`streamify.register`.
"""

from __future__ import annotations

import operator
from typing import Any, Dict, Iterable

import torch
import torch.nn.functional as F

#: elementwise functions: the result at each frame depends on the inputs at that frame only
ELEMENTWISE_FUNCTIONS = {
    operator.add,
    operator.sub,
    operator.mul,
    operator.truediv,
    operator.floordiv,
    operator.pow,
    operator.neg,
    operator.pos,
    operator.abs,
    operator.mod,
    operator.iadd,
    operator.isub,
    operator.imul,
    operator.itruediv,
    torch.add,
    torch.sub,
    torch.subtract,
    torch.mul,
    torch.multiply,
    torch.div,
    torch.divide,
    torch.true_divide,
    torch.pow,
    torch.neg,
    torch.abs,
    torch.exp,
    torch.exp2,
    torch.expm1,
    torch.log,
    torch.log1p,
    torch.log2,
    torch.log10,
    torch.sqrt,
    torch.rsqrt,
    torch.sin,
    torch.cos,
    torch.tan,
    torch.tanh,
    torch.sinh,
    torch.cosh,
    torch.asin,
    torch.acos,
    torch.atan,
    torch.atan2,
    torch.sigmoid,
    torch.relu,
    torch.sign,
    torch.sgn,
    torch.clamp,
    torch.clip,
    torch.where,
    torch.maximum,
    torch.minimum,
    torch.lerp,
    torch.reciprocal,
    torch.square,
    torch.erf,
    torch.erfc,
    torch.floor,
    torch.ceil,
    torch.round,
    torch.trunc,
    torch.frac,
    torch.hypot,
    torch.fmod,
    torch.remainder,
    torch.addcmul,
    torch.addcdiv,
    torch.clamp_min,
    torch.clamp_max,
    torch.nan_to_num,
    torch.complex,
    torch.polar,
    torch.real,
    torch.imag,
    torch.angle,
    torch.conj,
    torch.zeros_like,
    torch.ones_like,
    torch.full_like,
    torch.empty_like,
    torch.logical_and,
    torch.logical_or,
    torch.logical_not,
    torch.gt,
    torch.lt,
    torch.ge,
    torch.le,
    torch.eq,
    torch.ne,
    F.relu,
    F.relu6,
    F.leaky_relu,
    F.elu,
    F.selu,
    F.celu,
    F.gelu,
    F.silu,
    F.mish,
    F.softplus,
    F.softsign,
    F.tanhshrink,
    F.hardtanh,
    F.hardswish,
    F.hardsigmoid,
    F.logsigmoid,
    F.sigmoid,
    F.tanh,
    F.prelu,
    F.hardshrink,
    F.softshrink,
    F.threshold,
    F.rrelu,
}

ELEMENTWISE_METHODS = {
    "add",
    "sub",
    "mul",
    "div",
    "true_divide",
    "pow",
    "neg",
    "abs",
    "exp",
    "log",
    "log1p",
    "sqrt",
    "rsqrt",
    "sin",
    "cos",
    "tanh",
    "sigmoid",
    "relu",
    "clamp",
    "clip",
    "clamp_min",
    "clamp_max",
    "sign",
    "reciprocal",
    "square",
    "float",
    "double",
    "half",
    "to",
    "type_as",
    "contiguous",
    "clone",
    "detach",
    "masked_fill",
    "add_",
    "sub_",
    "mul_",
    "div_",
    "pow_",
    "clamp_",
    "tanh_",
    "sigmoid_",
    "relu_",
    "neg_",
    "exp_",
    "abs_",
    "__add__",
    "__mul__",
    "__sub__",
    "__truediv__",
    "__radd__",
    "__rmul__",
    "__rsub__",
    "__rtruediv__",
    "lerp",
    "maximum",
    "minimum",
    "where",
    "expm1",
    "floor",
    "ceil",
    "round",
    "erf",
    "atan",
    "sin_",
    "cos_",
    "gt",
    "lt",
    "ge",
    "le",
    "eq",
    "ne",
    "logical_and",
    "logical_or",
    "logical_not",
    "addcmul",
    "addcdiv",
    "nan_to_num",
    "zero_",
    "fill_",
    "new_zeros_like",
}

#: functions that concatenate or stack along a dimension given as ``dim``
JOIN_FUNCTIONS = {torch.cat, torch.concat, torch.concatenate, torch.stack}

#: functions and methods that split along a dimension (results are tuples)
SPLIT_FUNCTIONS = {torch.chunk, torch.split, torch.tensor_split, torch.unbind}
SPLIT_METHODS = {"chunk", "split", "tensor_split", "unbind"}

#: reductions and normalisations over the dimensions given as ``dim`` (refused over time)
DIM_FUNCTIONS = {
    torch.sum,
    torch.mean,
    torch.amax,
    torch.amin,
    torch.prod,
    torch.std,
    torch.var,
    torch.norm,
    torch.logsumexp,
    torch.softmax,
    torch.log_softmax,
    F.softmax,
    F.log_softmax,
    F.normalize,
    torch.cumsum,
    torch.cumprod,
    F.glu,
    torch.max,
    torch.min,
    torch.argmax,
    torch.argmin,
    torch.any,
    torch.all,
    torch.linalg.vector_norm,
    torch.std_mean,
    torch.var_mean,
}
DIM_METHODS = {
    "sum",
    "mean",
    "amax",
    "amin",
    "prod",
    "std",
    "var",
    "norm",
    "logsumexp",
    "softmax",
    "log_softmax",
    "cumsum",
    "cumprod",
    "max",
    "min",
    "argmax",
    "argmin",
    "any",
    "all",
}
LAYOUT_METHODS = {"view", "reshape", "flatten", "unflatten", "unsqueeze", "squeeze", "view_as", "reshape_as"}
LAYOUT_FUNCTIONS = {torch.reshape, torch.flatten, torch.unflatten, torch.unsqueeze, torch.squeeze}
PERMUTE_METHODS = {"permute", "transpose", "movedim", "swapaxes", "mT"}
PERMUTE_FUNCTIONS = {torch.permute, torch.transpose, torch.movedim, torch.swapaxes}

SIZE_METHODS = {"size", "dim", "numel"}

RANDOM_FUNCTIONS = {
    torch.randn,
    torch.rand,
    torch.randn_like,
    torch.rand_like,
    torch.randint,
    torch.randint_like,
    torch.normal,
    torch.bernoulli,
    torch.multinomial,
    torch.poisson,
    F.dropout,
    F.alpha_dropout,
    F.feature_alpha_dropout,
    F.dropout1d,
}
RANDOM_METHODS = {"normal_", "uniform_", "bernoulli_", "random_", "exponential_", "bernoulli"}

#: operations over the whole time axis, refused with advice
WHOLE_AXIS = {
    F.group_norm: "GroupNorm normalises over time; use a norm over channels (LayerNorm on channels) instead",
    F.instance_norm: "InstanceNorm normalises over time; use a norm over channels instead",
    F.adaptive_avg_pool1d: "adaptive pooling reads the whole signal; use a fixed-window pool",
    F.adaptive_max_pool1d: "adaptive pooling reads the whole signal; use a fixed-window pool",
    F.scaled_dot_product_attention: "attention over the whole time axis cannot stream; use windowed causal attention",
    torch.flip: "flipping time needs the whole signal",
    torch.fft.rfft: "a Fourier transform over the whole signal cannot stream; use a framed transform",
    torch.fft.fft: "a Fourier transform over the whole signal cannot stream; use a framed transform",
    torch.stft: "torch.stft over the whole signal is not supported yet; use a strided conv filterbank",
}


#: function -> name of the converter's handler; method name -> handler (built below, highest priority last)
FUNCTION_RULES: Dict[Any, str] = {}
METHOD_RULES: Dict[str, str] = {}


def _rule(handler: str, functions: Iterable[Any] = (), methods: Iterable[str] = ()) -> None:
    for function in functions:
        FUNCTION_RULES[function] = handler
    for method in methods:
        METHOD_RULES[method] = handler


# lowest priority first: a later rule overrides an earlier one for the same op
_rule("visit_elementwise", (F.dropout, F.alpha_dropout, F.feature_alpha_dropout, F.dropout1d))
_rule(
    "visit_last_dim_op", (F.layer_norm, F.linear, torch.matmul, operator.matmul, F.batch_norm), ("matmul", "__matmul__")
)
_rule("visit_elementwise", ELEMENTWISE_FUNCTIONS, ELEMENTWISE_METHODS)
_rule("visit_dim_op", DIM_FUNCTIONS, DIM_METHODS)
_rule("visit_split", SPLIT_FUNCTIONS, SPLIT_METHODS)
_rule("visit_join", JOIN_FUNCTIONS)
_rule("visit_view", LAYOUT_FUNCTIONS, LAYOUT_METHODS)
_rule("visit_permute", PERMUTE_FUNCTIONS, PERMUTE_METHODS)
_rule("visit_size", (getattr, torch.numel), SIZE_METHODS)
_rule("visit_narrow", (torch.narrow,), ("narrow",))
_rule("visit_getitem", (operator.getitem,))
_rule("visit_pool", (F.avg_pool1d, torch.avg_pool1d, F.max_pool1d, torch.max_pool1d))
_rule("visit_interpolate", (F.interpolate, F.upsample))
_rule("visit_pad", (F.pad,))
_rule("visit_conv_transpose", (F.conv_transpose1d, torch.conv_transpose1d))
_rule("visit_conv", (F.conv1d, torch.conv1d))


def handler_of(op: str, target: Any) -> Any:
    """The handler name for a ``call_function`` / ``call_method`` node's target, or None (an op without a rule)."""
    if op == "call_method":
        return METHOD_RULES.get(target)
    try:
        return FUNCTION_RULES.get(target)
    except TypeError:  # an unhashable callable
        return None
