"""The module rule table: which ``torch.nn`` (or user) layer streams as which streamify layer, or why not.

One table, :data:`MODULE_RULES`, maps a module class to a :class:`ModuleRule`: a ``handler``
that builds the streaming copy of an instance, or a ``refusal`` (the cause and the fix) for a
layer that cannot stream. Containers (:func:`streamify.layers.as_streaming`) and the converter
(:func:`streamify.convert`) both read it; :func:`register` adds rules, so users can teach the
converter their own layers::

    streamify.register(MyFilter, lambda m: streamify.layers.Conv1d.from_torch(m.as_conv()))

A rule matches by behaviour, not by class alone: a subclass that overrides ``forward`` computes
something else (e.g. ``cached_conv.Conv1d`` pads inside ``forward`` before a ``padding=0`` conv),
so it matches only if its ``forward`` is the registered class's own; otherwise the converter
traces into it. Refusals match every subclass (a subclass of ``nn.MultiheadAttention`` is still
attention over the whole signal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple, Type

from torch import nn

from streamify.layers.base import StreamingError, StreamingModule
from streamify.layers.conv import AvgPool1d, Conv1d, MaxPool1d
from streamify.layers.conv_transpose import ConvTranspose1d
from streamify.layers.recurrent import GRU, LSTM
from streamify.layers.resample import upsample
from streamify.layers.shift import Pad

#: a handler builds the streaming copy of a module applied to ``[batch, channels, time]``
Handler = Callable[[nn.Module], StreamingModule]


@dataclass(frozen=True)
class ModuleRule:
    """How instances of one module class stream.

    Attributes:
        handler: builds the streaming copy of an instance (None for a refusal).
        refusal: why such a layer cannot stream and what to do instead (None where it streams).
        layout: ``"channels_time"`` (input ``[batch, channels, time]``) or ``"recurrent"`` (an RNN, time
            on axis 0 or 1 as the module's ``batch_first`` says).
    """

    handler: Optional[Handler] = None
    refusal: Optional[str] = None
    layout: str = "channels_time"


def _avg_pool(m: nn.AvgPool1d) -> StreamingModule:
    return AvgPool1d(m.kernel_size[0], m.stride[0], m.padding[0], m.ceil_mode, m.count_include_pad)


def _max_pool(m: nn.MaxPool1d) -> StreamingModule:
    if m.return_indices:
        raise StreamingError("streamify: MaxPool1d with return_indices cannot stream; drop return_indices")
    return MaxPool1d(m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)


def _upsample(m: nn.Upsample) -> StreamingModule:
    if m.size is not None or m.scale_factor is None:
        raise StreamingError("streamify: Upsample to a fixed size reads the signal length; give a scale_factor")
    if m.align_corners:
        raise StreamingError("streamify: Upsample with align_corners=True depends on the signal length; use False")
    scale = m.scale_factor
    return upsample(scale[0] if isinstance(scale, tuple) else scale, m.mode)


def _pad(mode: str) -> Handler:
    def handler(m: nn.Module) -> StreamingModule:
        left, right = m.padding
        return Pad(left, right, mode, float(getattr(m, "value", 0.0)))

    return handler


def _whole(what: str, fix: str) -> str:
    return f"reads the whole time axis ({what}) and cannot stream; {fix}"


MODULE_RULES: Dict[type, ModuleRule] = {
    nn.Conv1d: ModuleRule(Conv1d.from_torch),
    nn.ConvTranspose1d: ModuleRule(ConvTranspose1d.from_torch),
    nn.AvgPool1d: ModuleRule(_avg_pool),
    nn.MaxPool1d: ModuleRule(_max_pool),
    nn.Upsample: ModuleRule(_upsample),
    nn.ReflectionPad1d: ModuleRule(_pad("reflect")),
    nn.ReplicationPad1d: ModuleRule(_pad("replicate")),
    nn.ConstantPad1d: ModuleRule(_pad("constant")),
    nn.ZeroPad1d: ModuleRule(_pad("constant")),
    nn.CircularPad1d: ModuleRule(_pad("circular")),
    nn.LSTM: ModuleRule(LSTM.from_torch, layout="recurrent"),
    nn.GRU: ModuleRule(GRU.from_torch, layout="recurrent"),
    nn.AdaptiveAvgPool1d: ModuleRule(refusal=_whole("adaptive pooling", "use a fixed-window pool (nn.AvgPool1d)")),
    nn.AdaptiveMaxPool1d: ModuleRule(refusal=_whole("adaptive pooling", "use a fixed-window pool (nn.MaxPool1d)")),
    nn.MultiheadAttention: ModuleRule(refusal=_whole("attention", "use windowed causal attention")),
    nn.InstanceNorm1d: ModuleRule(refusal=_whole("InstanceNorm normalises over time", "use a norm over channels")),
    nn.GroupNorm: ModuleRule(refusal=_whole("GroupNorm normalises over time", "use LayerNorm over channels")),
    nn.TransformerEncoderLayer: ModuleRule(refusal=_whole("self-attention", "use causal, windowed attention")),
    nn.TransformerDecoderLayer: ModuleRule(refusal=_whole("self-attention", "use causal, windowed attention")),
    nn.TransformerEncoder: ModuleRule(refusal=_whole("self-attention", "use causal, windowed attention")),
    nn.Transformer: ModuleRule(refusal=_whole("self-attention", "use causal, windowed attention")),
}


def register(
    module_class: Type[nn.Module], handler: Optional[Handler] = None, *, refusal: Optional[str] = None
) -> None:
    """Teach :func:`streamify.convert` (and the containers) how a module class streams.

    Args:
        module_class: the class; its instances (and those of subclasses that keep its ``forward``)
            are kept whole by the converter's capture and replaced by ``handler(instance)``.
        handler: returns the streaming copy of an instance, a :class:`StreamingModule` that takes and
            returns ``[batch, channels, time]`` (e.g. ``streamify.layers.Conv1d(...)``); it is configured
            with the delay of its input by the converter, and its ``delay`` is checked by the conversion's
            verification.
        refusal: instead of a handler, the reason instances cannot stream and the fix (``"cause; fix"``).

    Raises:
        TypeError: for anything but an ``nn.Module`` subclass with exactly one of ``handler`` or ``refusal``.
    """
    if not (isinstance(module_class, type) and issubclass(module_class, nn.Module)):
        raise TypeError(f"streamify.register: {module_class!r} is not a torch.nn.Module subclass")
    if (handler is None) == (refusal is None):
        raise TypeError("streamify.register: give exactly one of handler (a callable) or refusal (a text)")
    if handler is not None and not callable(handler):
        raise TypeError(f"streamify.register: the handler {handler!r} is not callable")
    layout = "recurrent" if issubclass(module_class, nn.RNNBase) else "channels_time"
    MODULE_RULES[module_class] = ModuleRule(handler, refusal, layout)


def unregister(module_class: Type[nn.Module]) -> None:
    """Remove the rule of ``module_class`` (registered with :func:`register`)."""
    MODULE_RULES.pop(module_class, None)


def rule_for(module: nn.Module) -> Optional[Tuple[type, ModuleRule]]:
    """The rule that applies to ``module`` (see the module docstring), with the class it was registered for."""
    for cls in type(module).__mro__:
        rule = MODULE_RULES.get(cls)
        if rule is None:
            continue
        if rule.refusal is not None or type(module).forward is cls.forward:
            return cls, rule
        return None  # a subclass with its own forward: not the registered layer
    return None


def resembles_time_layer(module: nn.Module) -> bool:
    """Whether ``module`` is an instance of a class of the rule table (its own ``forward`` or not)."""
    return isinstance(module, tuple(MODULE_RULES))


def from_torch_layer(module: nn.Module) -> Optional[StreamingModule]:
    """The streaming copy of a time layer of the rule table, or None if no rule applies to ``module``.

    Raises:
        StreamingError: for a layer that cannot stream (its rule's refusal, naming its class).
    """
    found = rule_for(module)
    if found is None:
        return None
    cls, rule = found
    if rule.refusal is not None:
        raise StreamingError(f"streamify: {type(module).__name__} {rule.refusal}")
    assert rule.handler is not None
    return rule.handler(module)
