"""Capture of a model's computation as a torch.fx graph, with the time layers kept whole.

Time layers of ``torch.nn`` (Conv1d, ConvTranspose1d, pools, pads, Upsample, LSTM,
GRU), streamify's own layers and TorchScript modules stay single calls (leaves);
everything else is traced down to functions and tensor methods. TorchScript
functions called from ``forward`` (e.g. a scripted Snake activation) are recorded as
opaque calls instead of failing the trace. Buffers are read as concrete tensors, so
Python control flow on them (``if self.warmed_up:``) is resolved at conversion.

The trace is concrete: every node is also evaluated on the example, so control flow
on shapes (``if pad > 0:``, ``assert T % stride == 0``, ``len(x.shape)``) follows the
example and is checked to follow a second signal length the same way (else refused);
control flow on the signal's values is refused. Computations the output does not
use (e.g. the state updates of a model's own streaming API) are removed.
"""

from __future__ import annotations

import builtins
import contextlib
import math
import operator
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.fx as fx
from torch import Tensor, nn

from streamify.convert.mutation import remove_dead_code
from streamify.convert.sources import source_of, user_frame, where_of
from streamify.layers.base import StreamingError, StreamingModule
from streamify.layers.torch_layers import rule_for
from streamify.runtime.model import MethodCall

#: tensor factories that code calls with sizes read from the input (``torch.zeros(B, C, k)``):
#: recorded as calls when a size is traced, instead of failing in the factory
TRACED_FACTORIES = (
    torch.zeros,
    torch.ones,
    torch.full,
    torch.empty,
    torch.randn,
    torch.rand,
    torch.randint,
    torch.arange,
    torch.tensor,
    torch.as_tensor,
    torch.scalar_tensor,
)

_UNKNOWN = object()


def _untraced():
    """A context where the tracer's patches (module calls, wrapped functions) are undone."""
    try:
        from torch.fx._symbolic_trace import _maybe_revert_all_patches
    except ImportError:  # pragma: no cover - older or newer torch
        import contextlib

        return contextlib.nullcontext()
    return _maybe_revert_all_patches()


#: ops whose result describes a tensor's layout, not its values
_SHAPE_METHODS = {
    "size",
    "dim",
    "ndimension",
    "numel",
    "nelement",
    "get_device",
    "stride",
    "storage_offset",
    "element_size",
    "is_complex",
    "is_floating_point",
    "is_contiguous",
}
_SHAPE_ATTRIBUTES = {"shape", "dtype", "device", "ndim", "is_cuda", "layout", "requires_grad", "is_sparse", "is_meta"}


class _ConcreteMixin:
    """What a proxy that knows its value on the example adds: Python may read ints and lengths from it.

    ``len``, ``int``, ``float`` and ``index`` return the example's value (the tracer records a
    guard, checked on a second signal length); rounding stays in the graph.
    """

    tracer: Any

    def __len__(self) -> int:
        return self.tracer.specialize(self, len)

    def __int__(self) -> int:
        return self.tracer.specialize(self, int)

    def __index__(self) -> int:
        return self.tracer.specialize(self, operator.index)

    def __float__(self) -> float:
        return self.tracer.specialize(self, float)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.tracer.create_proxy("call_function", operator.setitem, (self, key, value), {})

    def __ceil__(self) -> fx.Proxy:
        return self.tracer.create_proxy("call_function", math.ceil, (self,), {})

    def __floor__(self) -> fx.Proxy:
        return self.tracer.create_proxy("call_function", math.floor, (self,), {})

    def __trunc__(self) -> fx.Proxy:
        return self.tracer.create_proxy("call_function", math.trunc, (self,), {})

    def __round__(self, ndigits: Optional[int] = None) -> fx.Proxy:
        args = (self,) if ndigits is None else (self, ndigits)
        return self.tracer.create_proxy("call_function", round, args, {})


class _ConcreteProxy(_ConcreteMixin, fx.Proxy):
    """A traced value that knows its value on the example (``isinstance``: see :func:`_tensor_isinstance`)."""

    def __getattr__(self, k: str) -> fx.proxy.Attribute:
        return _ConcreteAttribute(self, k)


class _ConcreteAttribute(_ConcreteMixin, fx.proxy.Attribute):
    """``x.shape`` and other attributes of a concrete proxy (``len(x.shape)`` works)."""


_builtin_isinstance = builtins.isinstance


def _names_tensor(cls: Any) -> bool:
    if cls is Tensor:
        return True
    return type(cls) is tuple and any(_names_tensor(c) for c in cls)


def _tensor_isinstance(obj: Any, cls: Any) -> bool:
    """``isinstance`` during a capture: a traced tensor is a ``torch.Tensor`` for the user's code.

    Code outside torch (the user's, einops) that branches on ``isinstance(x, torch.Tensor)`` then takes
    the tensor branch; torch's own Python code and C code (which never calls this) see the proxy as it is.
    """
    if (
        type(obj) is _ConcreteProxy
        and _names_tensor(cls)
        and _builtin_isinstance(obj.node.meta.get("concrete", _UNKNOWN), Tensor)
        and not sys._getframe(1).f_globals.get("__name__", "").startswith(("torch", "streamify"))
    ):
        return True
    return _builtin_isinstance(obj, cls)


@contextlib.contextmanager
def _traced_tensors_are_tensors():
    builtins.isinstance = _tensor_isinstance
    try:
        yield
    finally:
        builtins.isinstance = _builtin_isinstance


class StreamTracer(fx.Tracer):
    """fx tracer that keeps time layers, streamify layers and TorchScript modules as leaves.

    With an ``example`` input, every node is also evaluated on it while tracing (a
    concrete trace): Python control flow on shapes and sizes (``if pad > 0:``,
    ``assert T % stride == 0``, ``math.ceil(length / stride)``, ``len(...)``) takes the
    example's branch instead of failing, and each such decision is recorded in
    ``guards`` so that :func:`capture` can check that another signal length takes
    the same branch. Control flow on the signal's values is still refused.
    """

    def __init__(self, autowrap_functions: tuple = (), example: Optional[Tensor] = None) -> None:
        super().__init__(autowrap_functions=autowrap_functions)
        self.proxy_buffer_attributes = True  # buffers are traced values with their concrete value
        self.record_stack_traces = True
        self.example = example
        #: (node, conversion, value on the example) for each decision taken on a traced value
        self.guards: List[Tuple[fx.Node, Callable, Any]] = []
        if example is not None and hasattr(self, "_autowrap_function_ids") and hasattr(self, "_autowrap_search"):
            self._autowrap_function_ids |= {id(f) for f in TRACED_FACTORIES}
            self._autowrap_search.append(torch)

    def create_arg(self, a: Any) -> Any:
        if isinstance(a, fx.Proxy) and issubclass(type(a), fx.Proxy):  # before fx's own tensor checks
            return a.node
        return super().create_arg(a)

    # ---- concrete values (only with an example)
    def proxy(self, node: fx.Node) -> fx.Proxy:
        if self.example is None:
            return super().proxy(node)
        return _ConcreteProxy(node, self)

    def create_proxy(self, kind, target, args, kwargs, name=None, type_expr=None, proxy_factory_fn=None):
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
        if self.example is not None and isinstance(proxy, fx.Proxy):
            node = proxy.node
            node.meta["concrete"] = self._evaluate(node)
            node.meta["reads_signal"] = self._reads_signal(node)
        return proxy

    def _evaluate(self, node: fx.Node) -> Any:
        if node.op == "placeholder":
            first = not any(n.op == "placeholder" for n in node.graph.nodes if n is not node)
            return self.example if first else _UNKNOWN
        if node.op == "get_attr":
            value: Any = self.root
            try:
                with _untraced():
                    for part in str(node.target).split("."):
                        value = getattr(value, part)
            except AttributeError:
                return _UNKNOWN
            return value
        unknown = False

        def concrete(n: fx.Node) -> Any:
            nonlocal unknown
            value = n.meta.get("concrete", _UNKNOWN)
            unknown = unknown or value is _UNKNOWN
            return value

        args = fx.node.map_arg(node.args, concrete)
        kwargs = fx.node.map_arg(node.kwargs, concrete)
        if unknown:
            return _UNKNOWN
        try:
            with torch.no_grad(), _untraced():
                if node.op == "call_function":
                    return node.target(*args, **kwargs)
                if node.op == "call_method":
                    return getattr(args[0], node.target)(*args[1:], **kwargs)
                if node.op == "call_module":
                    return self.root.get_submodule(node.target)(*args, **kwargs)
        except Exception:
            return _UNKNOWN
        return _UNKNOWN

    @staticmethod
    def _reads_signal(node: fx.Node) -> bool:
        """Whether the node's value depends on the values (not just the shape) of the input."""
        if node.op == "placeholder":
            return True
        if node.op == "call_method" and node.target in _SHAPE_METHODS:
            return False
        if node.op == "call_function" and node.target is getattr and node.args[1] in _SHAPE_ATTRIBUTES:
            return False
        if node.op == "call_function" and node.target in (len, torch.numel):
            return False
        return any(arg.meta.get("reads_signal", False) for arg in node.all_input_nodes)

    def specialize(self, proxy: fx.Proxy, conversion: Callable) -> Any:
        """The example's ``conversion(value)`` of a traced value, recorded as a guard."""
        node = proxy.node
        value = node.meta.get("concrete", _UNKNOWN)
        if value is _UNKNOWN or node.meta.get("reads_signal", False):
            what = (
                "used as a condition"
                if conversion is bool
                else f"converted by {getattr(conversion, '__name__', conversion)}()"
            )
            raise fx.proxy.TraceError(
                f"a traced value is {what} and depends on the signal's values"
                if value is not _UNKNOWN
                else f"a traced value is {what} and could not be evaluated on the example"
            )
        result = conversion(value)
        self.guards.append((node, conversion, result))
        return result

    def to_bool(self, obj: fx.Proxy) -> bool:
        if self.example is None:
            return super().to_bool(obj)
        return self.specialize(obj, bool)

    def iter(self, obj: fx.Proxy):
        if self.example is None:
            return super().iter(obj)
        return iter([obj[i] for i in range(self.specialize(obj, len))])

    def call_module(self, m: nn.Module, forward: Callable, args: Any, kwargs: Any) -> Any:
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception as error:
            if not hasattr(error, "_streamify_layer"):  # the innermost layer whose forward failed
                try:
                    path = self.path_of_module(m)
                except NameError:
                    path = "?"
                error._streamify_layer = (path, type(m))  # type: ignore[attr-defined]
            raise

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if isinstance(m, (StreamingModule, torch.jit.ScriptModule)) or rule_for(m) is not None:
            return True  # a layer of the rule table by behaviour (its forward is the registered class's own)
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


def capture(
    model: nn.Module,
    method: str = "forward",
    example: Optional[Tensor] = None,
    probe: Optional[Tensor] = None,
) -> fx.GraphModule:
    """Trace ``model.<method>`` into a GraphModule, without the computations its output does not use.

    With an ``example``, the trace is concrete (see :class:`StreamTracer`): control flow on
    shapes follows the example; with a ``probe`` of another length too, every such
    decision is checked to come out the same on the probe.

    Raises:
        StreamingError: naming the construct fx could not trace, or the control flow that
            depends on the signal length, and what to do.
    """
    root = MethodCall(model, method)
    tracer = StreamTracer(autowrap_functions=tuple(_script_functions(model)), example=example)
    try:
        with _traced_tensors_are_tensors():
            graph = tracer.trace(root)
    except Exception as error:  # fx raises many types; re-raise with guidance
        raise StreamingError(_capture_failure(model, method, error)) from error
    for node in graph.nodes:
        # fx writes `wrap("torch.zeros")` into the code of a graph with wrapped calls, which
        # registers names that later traces fail to find: these graphs are never traced again
        node.meta.pop("is_wrapped", None)
        if node.op == "call_function" and isinstance(node.target, torch.jit.ScriptFunction):
            node.target = script_function_caller(node.target)
    gm = fx.GraphModule(root, graph)
    if probe is not None and tracer.guards:
        _check_guards(gm, tracer.guards, example, probe, model, method)
    remove_dead_code(gm.graph)
    gm.recompile()
    return gm


def _capture_failure(model: nn.Module, method: str, error: BaseException) -> str:
    """What could not be captured, where (layer path, class, source line), why, and what to do."""
    layer = getattr(error, "_streamify_layer", None)
    where = f"{type(model).__name__}.{method}"
    if layer is not None:
        path, cls = layer
        path = path.removeprefix("model").removeprefix(".") or "the model"
        where = f"layer {path!r} ({cls.__module__}.{cls.__qualname__})"
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    cause = f"{type(error).__name__}: {message}"
    if "depends on the signal's values" in message:
        fix = (
            "a stream cannot take a Python decision on the signal's values; compute both branches with torch.where, "
            "or script the helper with torch.jit.script so that it is kept as one call"
        )
    else:
        fix = (
            "the converter runs the code on a traced tensor that stands for the signal; if a library call cannot "
            "take one, script the helper with torch.jit.script, make it a streamify layer, or register its module "
            "class with streamify.register"
        )
    return f"streamify: convert: could not capture {where}{user_frame(error)}: {cause}; {fix}"


_CALLERS: Dict[int, Callable] = {}


def script_function_caller(fn: torch.jit.ScriptFunction) -> Callable:
    """A Python function with ``fn``'s signature that calls ``fn``.

    fx writes a call to a TorchScript function as ``torch.jit.ScriptFunction(...)`` (it names
    it by its type), which fails; a call to this wrapper runs eagerly, and TorchScript
    compiles it (its source is registered like fx's generated code).
    """
    import linecache

    if id(fn) in _CALLERS:
        return _CALLERS[id(fn)]
    try:
        schema = fn.schema
        params = []
        for argument in schema.arguments:
            param = f"{argument.name}: {argument.type}"
            if argument.has_default_value():
                param += f" = {argument.default_value!r}"
            params.append(param)
        returns = [str(r.type) for r in schema.returns]
        annotation = returns[0] if len(returns) == 1 else f"Tuple[{', '.join(returns)}]"
        name = "".join(c if c.isalnum() else "_" for c in fn.name)
        args = ", ".join(a.name for a in schema.arguments)
        source = f"def {name}({', '.join(params)}) -> {annotation}:\n    return __script_function__({args})\n"
        filename = f"<streamify: call of TorchScript function {fn.qualified_name}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        namespace = {
            "__name__": __name__,
            "__script_function__": fn,
            "Tensor": torch.Tensor,
            "List": List,
            "Optional": Optional,
            "Tuple": Tuple,
            "Dict": Dict,
            "torch": torch,
        }
        exec(compile(source, filename, "exec"), namespace)
        caller = namespace[name]
    except Exception:  # an unusual signature: keep the TorchScript function itself
        caller = fn
    _CALLERS[id(fn)] = caller
    return caller


def _check_guards(
    gm: fx.GraphModule, guards: List[Tuple[fx.Node, Callable, Any]], example, probe, model: nn.Module, method: str
) -> None:
    """Check that each decision the concrete trace took on the example comes out the same on ``probe``."""
    from streamify.convert.trial_runs import run_graph

    modules = dict(gm.named_modules())
    modules.update({("model." + k if k else "model"): v for k, v in model.named_modules()})
    concrete = {n: n.meta["concrete"] for n in gm.graph.nodes if n.meta.get("concrete", _UNKNOWN) is not _UNKNOWN}
    values = run_graph(
        gm, probe, example, lambda n: where_of(modules, n), model, getattr(model, method), example_values=concrete
    )
    for node, conversion, expected in guards:
        got = conversion(values[node]) if node in values else expected
        if got != expected:
            raise StreamingError(
                f"streamify: convert: Python control flow at {source_of(node)} depends on the signal length "
                f"or the batch size (it gives {expected!r} for {tuple(example.shape)} and {got!r} for "
                f"{tuple(probe.shape)}); "
                "a stream cannot follow it. Make the decision independent of the length (e.g. pad or crop by "
                "constants) and from the batch size"
            )
