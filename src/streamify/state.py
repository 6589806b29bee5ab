"""The state of a streaming model as a whole: reset, snapshot and restore, mode switch.

Every streaming module keeps its caches in non-persistent buffers (they are not part
of ``state_dict``: weights load the same whether a model has streamed or not) and a
few integer counters. These functions walk a model and handle all of them at once.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import torch
from torch import Tensor, nn

from streamify.layers.base import StreamingError, StreamingModule

_COUNTERS = ("stream_batch", "warm_left", "out_warm_left")


def _streaming_modules(model: nn.Module):
    for name, module in model.named_modules():
        if isinstance(module, StreamingModule):
            yield name, module


def reset(model: nn.Module, indices: Optional[List[int]] = None) -> None:
    """Return every streaming module of ``model`` to a fresh stream (or only batch items ``indices``)."""
    roots = [m for _, m in _streaming_modules(model) if m.is_root] or [m for _, m in _streaming_modules(model)]
    for module in roots:
        module.reset(indices)


def get_state(model: nn.Module) -> Dict[str, Tensor]:
    """A snapshot of the whole stream state of ``model`` (copies), for :func:`set_state`."""
    state: Dict[str, Tensor] = {}
    for name, module in _streaming_modules(model):
        prefix = f"{name}." if name else ""
        for buffer in module._state_buffers + ("warm_pos", "out_warm_pos"):
            state[prefix + buffer] = getattr(module, buffer).clone()
        for counter in _COUNTERS:
            state[prefix + counter] = torch.tensor(getattr(module, counter))
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
    expected = set(get_state_names(model))
    if set(state) != expected:
        missing = sorted(expected - set(state))[:5]
        extra = sorted(set(state) - expected)[:5]
        raise StreamingError(
            f"streamify: set_state: the snapshot does not fit this model (missing {missing}, unknown {extra}); "
            "take it with get_state() on a model of the same architecture"
        )
    # check every entry before restoring any, so that a refused snapshot leaves the state untouched
    for name, module in _streaming_modules(model):
        prefix = f"{name}." if name else ""
        for counter in _COUNTERS:
            _check_counter(state[prefix + counter], prefix + counter)
        batch = int(state[prefix + "stream_batch"])
        for buffer in module._state_buffers + ("warm_pos", "out_warm_pos"):
            _check_entry(module, buffer, state[prefix + buffer], batch, prefix + buffer)
    for name, module in _streaming_modules(model):
        prefix = f"{name}." if name else ""
        for buffer in module._state_buffers + ("warm_pos", "out_warm_pos"):
            setattr(module, buffer, state[prefix + buffer].detach().clone())
        for counter in _COUNTERS:
            setattr(module, counter, int(state[prefix + counter]))


def _refuse(entry: str, what: str, expected: str, got: str) -> StreamingError:
    return StreamingError(
        f"streamify: set_state: the snapshot entry {entry!r} has the wrong {what}: expected {expected}, got {got}; "
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


def _check_entry(module: StreamingModule, buffer: str, value: object, batch: int, entry: str) -> None:
    """Refuse a snapshot entry that cannot be this module's state: another dtype, device or shape
    (other cache lengths, channels, batch)."""
    current = getattr(module, buffer)
    if not isinstance(value, Tensor):
        raise _refuse(entry, "type", "a torch.Tensor", type(value).__name__)
    # caches follow the model's dtype and device (those of its weights); positions are int64
    want_dtype = module.dtype_marker.dtype if current.is_floating_point() else current.dtype
    if value.dtype != want_dtype:
        raise _refuse(entry, "dtype", str(want_dtype), str(value.dtype))
    want_device = module.dtype_marker.device
    if value.device != want_device:
        raise _refuse(entry, "device", str(want_device), str(value.device))
    fits = value.dim() == current.dim() and value.size(0) == batch
    if fits and value.dim() > 1:
        # the last dimension (cache length, state size) is fixed by the architecture; channel-like
        # dimensions too, unless the module accepts any channel count (its caches follow the input)
        fits = value.size(-1) == current.size(-1)
        if module.in_channels >= 0:
            fits = fits and value.shape[1:-1] == current.shape[1:-1]
    if not fits:
        raise StreamingError(
            f"streamify: set_state: the snapshot entry {entry!r} has shape {tuple(value.shape)}, which does not "
            f"fit {module.layer_name} (its state has shape [batch, ...] like {tuple(current.shape)}, batch "
            f"{batch}); take the snapshot with get_state() on a model of the same architecture"
        )


def get_state_names(model: nn.Module) -> List[str]:
    """Names of the entries of :func:`get_state`'s snapshot."""
    names = []
    for name, module in _streaming_modules(model):
        prefix = f"{name}." if name else ""
        names += [prefix + b for b in module._state_buffers + ("warm_pos", "out_warm_pos")]
        names += [prefix + c for c in _COUNTERS]
    return names


def set_streaming(model: nn.Module, streaming: bool) -> None:
    """Switch every streaming module between streaming (True) and offline computation (False, e.g. training)."""
    for _, module in _streaming_modules(model):
        module.streaming = streaming
