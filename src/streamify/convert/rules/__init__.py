"""The streaming rules of op-level graphs, one file per op family, and the open registry that maps ops to them.

A rule is ``rule(rewriter, node, time_inputs)``: it emits, into the rewriter's streaming graph, the layers
or ops that compute ``node`` buffer by buffer, and records the result's time axis, delay and rate; or it
raises naming the true cause. Families: :mod:`.windows` (convs, pads, pools, upsampling), :mod:`.layout`
(views, permutes, slices, splits; time folded into and out of other axes), :mod:`.combine` (pointwise
ops, joins, products, reductions, norms), :mod:`.spectral` (FFTs), :mod:`.recurrent` (LSTM, GRU),
:mod:`.random` (draws). :func:`register_op` adds or replaces a rule (``streamify.register`` calls it for ops).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import torch

Rule = Callable[..., None]

#: op (an aten overload packet, or a Python callable such as ``operator.getitem``) -> its rule
OP_RULES: Dict[Any, Rule] = {}
#: ops whose rule runs even where no time-varying tensor reaches them (draws of random numbers)
STATIC_RULES: Dict[Any, Rule] = {}


def _key(target: Any) -> Any:
    return target.overloadpacket if isinstance(target, torch._ops.OpOverload) else target


def op_rule(*targets: Any, static: bool = False) -> Callable[[Rule], Rule]:
    """Decorator: ``rule`` streams each of ``targets`` (aten packets)."""

    def decorate(rule: Rule) -> Rule:
        for target in targets:
            (STATIC_RULES if static else OP_RULES)[_key(target)] = rule
        return rule

    return decorate


def register_op(target: Any, rule: Optional[Rule] = None, *, refusal: Optional[str] = None) -> None:
    """Teach the converter an op: ``rule(rewriter, node, time_inputs)``, or a refusal ``"cause; fix"``."""
    if (rule is None) == (refusal is None):
        raise TypeError("streamify.register: give exactly one of handler (a rule) or refusal (a text)")
    if refusal is not None:
        what, _, fix = refusal.partition("; ")

        def refuse(rw: Any, node: Any, time_args: Any) -> None:
            raise rw.fail(node, what, fix or "replace it")

        rule = refuse
    OP_RULES[_key(target)] = rule


def register(target: Any, handler: Optional[Callable] = None, *, refusal: Optional[str] = None) -> None:
    """Teach :func:`streamify.convert` how a module class or an op streams (``streamify.register``).

    Args:
        target: an ``nn.Module`` subclass (see :func:`streamify.layers.torch_layers.register`: its instances
            are kept whole by the fx tracer, so a model holding one is converted by the fx tracer), or an
            aten op (``torch.ops.aten.cumsum``, an overload or its packet) of the op-level graph.
        handler: for a class, builds the streaming copy of an instance; for an op, the rule
            ``rule(rewriter, node, time_inputs)`` (see the families in this package for examples).
        refusal: instead of a handler, why it cannot stream and the fix (``"cause; fix"``).
    """
    if is_op(target):
        register_op(target, handler, refusal=refusal)
        return
    from streamify.layers.torch_layers import register as register_module

    register_module(target, handler, refusal=refusal)


def unregister_op(target: Any) -> None:
    OP_RULES.pop(_key(target), None)


def rule_of(target: Any, timed: bool) -> Optional[Rule]:
    """The rule of ``target``: for time-varying inputs its family's (pointwise ops by their aten tag)."""
    key = _key(target)
    if not timed:
        return STATIC_RULES.get(key)
    if key in OP_RULES:
        return OP_RULES[key]
    if isinstance(target, torch._ops.OpOverload) and torch.Tag.pointwise in target.tags:
        from streamify.convert.rules.combine import pointwise

        return pointwise
    return None


def is_op(target: Any) -> bool:
    return isinstance(target, (torch._ops.OpOverload, torch._ops.OpOverloadPacket))


from streamify.convert.rules import combine, layout, pattern, random, recurrent, spectral, windows  # noqa: E402,F401
