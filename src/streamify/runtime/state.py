"""The state of a streaming model as a whole: reset, snapshot and restore, explicit step, mode switch.

Every streaming module keeps its caches in non-persistent buffers (they are not part
of ``state_dict``: weights load the same whether a model has streamed or not) and a
few integer counters. Each layer class declares its state buffers once
(:meth:`StreamingModule.state_names`); :func:`state_layout` lists them for a whole model,
and the functions here, the ONNX export and ``cache_bytes`` all read that one layout.

Two ways to stream:

* stateful: ``y = model(x)`` keeps the state inside the model (:func:`reset`,
  :func:`get_state`, :func:`set_state` manage it);
* explicit: ``y, state = step(model, x, state)`` runs one buffer from a state given as a
  dict of tensors (:func:`initial_state` makes a fresh one) and returns the next state,
  leaving the model's own state untouched. The ONNX export traces exactly this function.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import torch
from torch import Tensor, nn

from streamify.layers.base import StreamingError, StreamingModule, busy_message

_COUNTERS = ("stream_batch", "warm_left", "out_warm_left")


@dataclass(frozen=True)
class StateSlot:
    """One state tensor of a model: buffer ``buffer`` of the streaming module at ``path``."""

    path: str  #: the module's qualified name in the model ("" for the model itself)
    buffer: str  #: the buffer's name, one of the module's :meth:`~StreamingModule.state_names`

    @property
    def name(self) -> str:
        """The entry's key in :func:`get_state` and :func:`step` dicts: ``"path.buffer"``."""
        return _entry_name(self.path, self.buffer)


def _entry_name(path: str, name: str) -> str:
    """The key of a module's state tensor or counter ``name`` in state dicts: ``"path.name"`` ("name" at the root)."""
    return f"{path}.{name}" if path else name


def _check_names(given: Iterable[str], expected: Iterable[str], where: str, advice: str) -> None:
    """Refuse a state dict whose keys are not exactly ``expected``, naming a few missing and unknown ones."""
    given, expected = set(given), set(expected)
    if given != expected:
        missing = sorted(expected - given)[:5]
        extra = sorted(given - expected)[:5]
        raise StreamingError(
            f"streamify: {where}: the {'state' if where == 'step' else 'snapshot'} does not fit this model "
            f"(missing {missing}, unknown {extra}); {advice}"
        )


def _streaming_modules(model: nn.Module) -> Iterator[Tuple[str, StreamingModule]]:
    for name, module in model.named_modules():
        if isinstance(module, StreamingModule):
            yield name, module


def state_layout(model: nn.Module) -> List[StateSlot]:
    """Every state tensor of ``model``'s streaming modules, in module order."""
    return [StateSlot(path, buffer) for path, module in _streaming_modules(model) for buffer in module.state_names()]


def reset(model: nn.Module, indices: Optional[List[int]] = None) -> None:
    """Return every streaming module of ``model`` to a fresh stream (or only batch items ``indices``)."""
    roots = [m for _, m in _streaming_modules(model) if m.is_root] or [m for _, m in _streaming_modules(model)]
    for module in roots:
        module.reset(indices)


def get_state(model: nn.Module) -> Dict[str, Tensor]:
    """A snapshot of the whole stream state of ``model`` (copies), for :func:`set_state`."""
    state: Dict[str, Tensor] = {}
    for name, module in _streaming_modules(model):
        for buffer in module.state_names():
            state[_entry_name(name, buffer)] = getattr(module, buffer).clone()
        for counter in _COUNTERS:
            state[_entry_name(name, counter)] = torch.tensor(getattr(module, counter))
    return state


def set_state(model: nn.Module, state: Dict[str, Tensor]) -> None:
    """Restore a snapshot taken by :func:`get_state` on the same model (or an identical one).

    All or nothing: every entry is checked first (its name, and that it is a tensor of the
    state's dtype, device and shape; counters are integer scalars), and a snapshot that does
    not fit raises :class:`StreamingError` naming the entry, what was expected and what was
    given, with the model's state untouched. The entries are copied (and detached).
    """
    from collections.abc import Mapping

    if not isinstance(state, Mapping):
        raise StreamingError(
            f"streamify: set_state: expected a snapshot (the dict that get_state() returns), got {type(state).__name__}"
        )
    _check_names(
        state, get_state_names(model), "set_state", "take it with get_state() on a model of the same architecture"
    )
    # check every entry before restoring any, so that a refused snapshot leaves the state untouched
    for name, module in _streaming_modules(model):
        for counter in _COUNTERS:
            _check_counter(state[_entry_name(name, counter)], _entry_name(name, counter))
        batch = int(state[_entry_name(name, "stream_batch")])
        for buffer in module.state_names():
            _check_entry(module, buffer, state[_entry_name(name, buffer)], batch, _entry_name(name, buffer))
    for name, module in _streaming_modules(model):
        for buffer in module.state_names():
            setattr(module, buffer, state[_entry_name(name, buffer)].detach().clone())
        for counter in _COUNTERS:
            setattr(module, counter, int(state[_entry_name(name, counter)]))


def _refuse(entry: str, what: str, expected: str, got: str, where: str = "set_state") -> StreamingError:
    if where == "step":
        return StreamingError(
            f"streamify: step: the state entry {entry!r} has the wrong {what}: expected {expected}, got {got}; "
            "start from initial_state(model, batch) and pass each step's returned state to the next"
        )
    return StreamingError(
        f"streamify: {where}: the snapshot entry {entry!r} has the wrong {what}: expected {expected}, got {got}; "
        "restore a snapshot taken with get_state() on this model (or one of the same architecture, dtype and "
        "device: move the snapshot's tensors with .to())"
    )


def _check_counter(value: object, entry: str) -> None:
    """Refuse a counter that is not an integer scalar tensor holding a value (a batch size >= 0)."""
    if not isinstance(value, Tensor):
        raise _refuse(entry, "type", "a torch.Tensor", type(value).__name__)
    if value.device.type == "meta":
        raise _refuse(entry, "device", "a device holding values (cpu, cuda...)", "meta")
    if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
        raise _refuse(entry, "dtype", "an integer dtype (torch.int64)", str(value.dtype))
    if value.dim() != 0:
        raise _refuse(entry, "shape", "a scalar ()", str(tuple(value.shape)))
    if entry.endswith("stream_batch") and int(value) < 0:
        raise _refuse(entry, "value", "a batch size >= 0", str(int(value)))


def _check_entry(
    module: StreamingModule, buffer: str, value: object, batch: int, entry: str, where: str = "set_state"
) -> None:
    """Refuse a snapshot entry that cannot be this module's state: another dtype, device or shape
    (other cache lengths, channels, batch)."""
    current = getattr(module, buffer)
    if not isinstance(value, Tensor):
        raise _refuse(entry, "type", "a torch.Tensor", type(value).__name__, where)
    # caches follow the model's dtype and device (those of its weights); positions are int64
    want_dtype = module.dtype_marker.dtype if current.is_floating_point() else current.dtype
    if value.dtype != want_dtype:
        raise _refuse(entry, "dtype", str(want_dtype), str(value.dtype), where)
    want_device = module.dtype_marker.device
    if value.device != want_device:
        raise _refuse(entry, "device", str(want_device), str(value.device), where)
    fits = value.dim() == current.dim() and value.size(0) == batch
    if fits and value.dim() > 1:
        # the last dimension (cache length, state size) is fixed by the architecture; channel-like
        # dimensions too, unless the module accepts any channel count (its caches follow the input)
        fits = value.size(-1) == current.size(-1)
        if module.in_channels >= 0:
            fits = fits and value.shape[1:-1] == current.shape[1:-1]
    if not fits:
        advice = (
            "start from initial_state(model, batch) with the buffer's batch size"
            if where == "step"
            else "take the snapshot with get_state() on a model of the same architecture"
        )
        raise StreamingError(
            f"streamify: {where}: the entry {entry!r} has shape {tuple(value.shape)}, which does not "
            f"fit {module.layer_name} (its state has shape [batch, ...] like {tuple(current.shape)}, batch "
            f"{batch}); {advice}"
        )


def get_state_names(model: nn.Module) -> List[str]:
    """Names of the entries of :func:`get_state`'s snapshot."""
    return [
        _entry_name(name, entry)
        for name, module in _streaming_modules(model)
        for entry in (*module.state_names(), *_COUNTERS)
    ]


def initial_state(model: StreamingModule, batch: int = 1, channels: Optional[int] = None) -> Dict[str, Tensor]:
    """The state of a fresh stream of ``batch`` items, for :func:`step`: one tensor per :func:`state_layout` slot.

    Tensors in the model's dtype and device (warm-up positions int64), each ``[batch, ...]``.
    ``channels``: the input's channel count, for a model that accepts any (``in_channels`` -1).
    ``model``'s own stream state is not touched.
    """
    channels = model.in_channels if channels is None else channels
    if channels < 0:
        raise StreamingError(
            f"streamify: initial_state: {model.layer_name} accepts any channel count; pass channels= (the input's)"
        )
    if batch < 1:
        raise StreamingError(f"streamify: initial_state: batch must be >= 1, got {batch}")
    # allocate by streaming one buffer of zeros through a copy, then return every item to a fresh stream
    probe = copy.deepcopy(model)
    reset(probe)
    marker = probe.dtype_marker
    x = torch.zeros(batch, channels, int(probe.buffer_multiple), dtype=marker.dtype, device=marker.device)
    with torch.no_grad():
        probe(x)
    reset(probe, list(range(batch)))
    return {slot.name: getattr(probe.get_submodule(slot.path), slot.buffer).clone() for slot in state_layout(probe)}


def step(model: StreamingModule, x: Tensor, state: Dict[str, Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:
    """One streaming step with explicit state: ``y, next_state = step(model, x, state)``.

    ``x`` ``[batch, in_channels, n]`` is the next buffer; ``state`` holds one tensor per
    :func:`state_layout` slot (from :func:`initial_state` or the previous step), each
    ``[batch, ...]``. Returns the output buffer (what ``model(x)`` returns) and the next
    state. Chained from :func:`initial_state`, it yields exactly what the stateful
    ``model(x)`` yields from a fresh stream. ``model``'s own stream state and ``state``'s
    tensors are left untouched. ONNX export traces this function.
    """
    if not isinstance(model, StreamingModule):
        raise StreamingError(f"streamify: step: expected a streaming model, got {type(model).__name__}")
    if not model.streaming:
        raise StreamingError("streamify: step: the model is in offline mode; set_streaming(model, True) first")
    layout = state_layout(model)
    _check_names(
        state,
        [slot.name for slot in layout],
        "step",
        "start from initial_state(model, batch) and pass each step's returned state to the next",
    )
    if x.dim() != 3:
        raise StreamingError(f"streamify: step: expected a buffer [batch, channels, time], got {x.dim()} dimensions")
    modules = [(slot, model.get_submodule(slot.path)) for slot in layout]
    for slot, module in modules:
        _check_entry(module, slot.buffer, state[slot.name], x.size(0), slot.name, "step")
    slots = [(module, slot.buffer) for slot, module in modules]
    y, next_values = _explicit_step(model, x, slots, [state[slot.name] for slot in layout])
    return y, {slot.name: value for slot, value in zip(layout, next_values)}


def _explicit_step(
    model: StreamingModule, x: Tensor, slots: List[Tuple[StreamingModule, str]], values: List[Tensor]
) -> Tuple[Tensor, List[Tensor]]:
    """Run ``model(x)`` in explicit-state mode from ``values`` for ``slots``, then put the model back as it was.

    Returns ``y`` and the next value of every slot (the given tensor itself where the step left it).
    Slots not given keep the model's tensors (the ONNX export passes only those a step replaces).
    The step lends the model's buffers to the given values: it holds the model's thread guard meanwhile
    (a step or a call from another thread is refused; see :class:`StreamingModule`), released on return
    or raise, since the model's own state is put back either way.
    """
    if model.busy:
        raise StreamingError(busy_message(model.layer_name))
    model.busy = True
    saved = [(module, buffer, getattr(module, buffer)) for module, buffer in slots]
    flags = [(module, module.explicit_state) for _, module in _streaming_modules(model)]
    try:
        for module, _ in flags:
            module.explicit_state = True
        for (module, buffer), value in zip(slots, values):
            setattr(module, buffer, value)
        if model.is_root:
            model._validate(x)
        y = model.advance(x)
        next_values = [getattr(module, buffer) for module, buffer in slots]
    finally:
        for module, buffer, value in saved:
            setattr(module, buffer, value)
        for module, flag in flags:
            module.explicit_state = flag
        model.busy = False
    return y, next_values


def set_streaming(model: nn.Module, streaming: bool) -> None:
    """Switch every streaming module between streaming (True) and offline computation (False, e.g. training)."""
    for _, module in _streaming_modules(model):
        module.streaming = streaming
