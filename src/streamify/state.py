"""Moved to :mod:`streamify.runtime.state`; this name stays for code written against it."""

from streamify.runtime.state import (
    StateSlot,
    get_state,
    get_state_names,
    initial_state,
    reset,
    set_state,
    set_streaming,
    state_layout,
    step,
)

__all__ = [
    "StateSlot",
    "get_state",
    "get_state_names",
    "initial_state",
    "reset",
    "set_state",
    "set_streaming",
    "state_layout",
    "step",
]
