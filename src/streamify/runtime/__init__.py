"""The runtime floor: what runs a streaming model, buffer after buffer, once it exists.

Conversion (:mod:`streamify.convert`) produces a :class:`StreamingModel`; the exports, the hosts and the
server run it with this package and :mod:`streamify.layers` alone, never importing the converter:

* :mod:`.model`: :class:`StreamingModel`, a converted model (its streaming graph and timing);
* :mod:`.state`: the state of a whole model (reset, snapshot and restore, explicit step, mode switch);
* :mod:`.buffering`: :class:`AnyLengthStream`, buffers of any length at an exactly known extra latency.
"""

from streamify.runtime.buffering import AnyLengthStream, extra_latency_frames
from streamify.runtime.model import StreamingModel
from streamify.runtime.state import (
    StateSlot,
    get_state,
    initial_state,
    reset,
    set_state,
    set_streaming,
    state_layout,
    step,
)

__all__ = [
    "AnyLengthStream",
    "StateSlot",
    "StreamingModel",
    "extra_latency_frames",
    "get_state",
    "initial_state",
    "reset",
    "set_state",
    "set_streaming",
    "state_layout",
    "step",
]
