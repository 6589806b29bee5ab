"""The TorchScript module of an nn~ file: nn~'s contract, resets asked by the host, warm-up at load.

:class:`NnTildeModule` holds one stream per exported method (``stream_0``, ``stream_1``, ...) and
everything that does not depend on the method names. The methods that carry those names, and
the two calls that reach a stream by its index, are added by :func:`~.codegen.wrapper_class`.
"""

from __future__ import annotations

import warnings
from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor, nn

from streamify.export.dispatch import StreamInterface, call_layers_through_interface
from streamify.export.sharing import share_equal_constants
from streamify.layers.base import StreamingModule
from streamify.runtime.buffering import AnyLengthStream

#: nn~ attribute type codes of ``A_params`` (bool, int, float, str)
TYPE_BOOL, TYPE_INT, TYPE_FLOAT, TYPE_STR = 0, 1, 2, 3

#: names of the module's own methods and attributes: no exported method may take one of them
RESERVED = (
    "get_methods",
    "warm_up",
    "warmed",
    "get_attributes",
    "get_reset",
    "set_reset",
    "get_reset_item",
    "set_reset_item",
    "set_sample_rate",
    "get_sample_rate",
    "get_streamify_info",
    "reset_streams",
    "reset_items",
    "sample_rate",
    "sr",
    "streamify_info",
    "pending_reset",
    "pending_items",
    "reset",
    "reset_item",
    "training",
    "warm_lengths",
    "warm_channels",
    "call_method",
    "call_stream",
    "reset_stream",
    "before_call",
    "after_call",
)


class _BufferedStream(AnyLengthStream):
    """An :class:`AnyLengthStream` whose model is called through :class:`StreamInterface`: its forward and
    reset compile once each, as functions of their own, instead of being inlined into every caller."""


# set as an object, not a string (this module postpones annotations): TorchScript reads the type from it
_BufferedStream.__annotations__ = {"stream": StreamInterface, "queued": List[int]}


def _scripted(stream: StreamingModule, name: str) -> torch.jit.ScriptModule:
    """``stream`` scripted behind its any-length buffering, its layers called through an interface (dispatch.py)."""
    stream.reset()
    call_layers_through_interface(stream)
    # scripted here: TorchScript cannot script a submodule typed by an interface from within its parent
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..* is deprecated", category=DeprecationWarning)
        buffered = _BufferedStream(torch.jit.script(stream), name=f"{stream.layer_name} ({name})")
        return torch.jit.script(buffered)


class NnTildeModule(nn.Module):
    """The part of the exported module that does not depend on the method names.

    Attributes (TorchScript): ``_methods``, ``_attributes`` (``get_methods()``,
    ``get_attributes()``), ``sample_rate`` (the model's, 0 if unknown), ``sr`` (the
    host's, from ``set_sample_rate``), ``streamify_info`` (``get_streamify_info()``),
    ``pending_reset`` / ``pending_items`` (resets asked by the host, applied by each
    method at its next call, on the audio thread), ``warm_lengths`` / ``warm_channels``
    (per method, the lengths (frames) and input channels that :meth:`warm_up` runs).

    Shape:
        method ``i``: ``[batch, in_channels, n / in_ratio]`` -> ``[batch, out_channels, n / out_ratio]``,
        any ``n`` (samples); the stream validates the buffer before any reset or state change.
    """

    def __init__(
        self, streams: Sequence[StreamingModule], names: Sequence[str], sample_rate: int, info: Dict[str, str]
    ) -> None:
        super().__init__()
        # one copy of each weight in the file, one compiled function per layer type at load (see dispatch.py)
        share_equal_constants(streams)
        # any host buffer length: accumulation up to the buffer multiple, validation before any reset
        for index, (stream, name) in enumerate(zip(streams, names)):
            setattr(self, f"stream_{index}", _scripted(stream, name))
        self._methods: List[str] = list(names)
        self._attributes: List[str] = ["reset", "reset_item"]
        self.register_buffer("reset_params", torch.tensor([TYPE_BOOL], dtype=torch.long))
        self.register_buffer("reset_item_params", torch.tensor([TYPE_INT], dtype=torch.long))
        self.sample_rate: int = int(sample_rate)
        self.sr: int = int(sample_rate)
        self.streamify_info: Dict[str, str] = dict(info)
        self.pending_reset: List[bool] = [False for _ in names]
        self.pending_items: List[List[int]] = [[] for _ in names]
        self.warmed: bool = False
        # each stream warms up at its buffer multiple and at its smallest length (frames)
        self.warm_lengths: List[List[int]] = [
            sorted({int(s.buffer_multiple), int(s.ratio_num)})
            for s in streams  # type: ignore[arg-type]
        ]
        self.warm_channels: List[int] = [int(s.in_channels) for s in streams]  # type: ignore[arg-type]

    def call_stream(self, index: int, x: Tensor) -> Tensor:
        """Stream ``index``'s forward (generated for each file by :func:`~.codegen.wrapper_class`)."""
        raise NotImplementedError("generated by streamify.export.nn_tilde.codegen.wrapper_class")

    def reset_stream(self, index: int, items: Optional[List[int]]) -> None:
        """Stream ``index``'s reset (generated for each file by :func:`~.codegen.wrapper_class`)."""
        raise NotImplementedError("generated by streamify.export.nn_tilde.codegen.wrapper_class")

    def call_method(self, index: int, x: Tensor) -> Tensor:
        """One host buffer through method ``index``, after the resets the host asked for since its last call."""
        if self.pending_reset[index]:
            self.pending_reset[index] = False
            self.pending_items[index] = torch.jit.annotate(List[int], [])
            self.reset_stream(index, None)
        if len(self.pending_items[index]) > 0:
            items = self.pending_items[index]
            self.pending_items[index] = torch.jit.annotate(List[int], [])
            self.reset_stream(index, items)  # queued; items outside the batch are ignored
        return self.after_call(index, self.call_stream(index, self.before_call(index, x)))

    @torch.jit.export
    def get_methods(self) -> List[str]:
        """The methods nn~ may call (each has a ``METHOD_params`` buffer). The first call warms the file up
        (``warm_up()``): nn~ calls this when it loads the file, before any audio."""
        if not self.warmed:
            self.warm_up()
        return self._methods

    @torch.jit.export
    def warm_up(self) -> None:
        """Compile every method's stream now, so that the host's first calls run at full speed.

        TorchScript's profiling executor profiles a function at its first call and optimises it at the
        second, which takes seconds for a large model: a host calling the methods first on its audio
        thread would drop out. Each stream (called through an interface, so that the host's calls reach
        the same compiled function) runs twice at its buffer multiple and twice at its smallest length,
        its resets run, and everything is reset: the streams are fresh again.
        """
        self.warmed = True
        device = self.reset_params.device
        with torch.no_grad():
            for index in range(len(self.warm_lengths)):
                for length in self.warm_lengths[index]:
                    self.reset_stream(index, None)
                    for _ in range(2):
                        # not silence: a method that starts at its input's signal (chaining.py) would not run on it
                        x = torch.full((1, self.warm_channels[index], length), 0.01, device=device)
                        self.call_stream(index, x)
                self.reset_stream(index, [0])
                self.reset_stream(index, None)
        self.reset_streams()

    @torch.jit.export
    def reset_streams(self) -> None:
        """Every stream of every method back to a fresh stream, now."""
        for index in range(len(self.pending_reset)):
            self.pending_reset[index] = False
            self.pending_items[index] = torch.jit.annotate(List[int], [])
            self.reset_stream(index, None)

    @torch.jit.export
    def reset_items(self, items: List[int]) -> None:
        """Batch items ``items`` of every method back to a fresh stream (at the next call with no input held back;
        items outside a stream's batch are ignored)."""
        for index in range(len(self.pending_items)):
            self.reset_stream(index, items)

    @torch.jit.export
    def get_attributes(self) -> List[str]:
        """Settable attributes: ``reset`` (bool, resets every stream) and ``reset_item`` (int, one batch item)."""
        return self._attributes

    @torch.jit.export
    def get_reset(self) -> bool:
        return False

    @torch.jit.export
    def set_reset(self, value: bool) -> int:
        """``set reset 1`` from the host: every stream of every method restarts fresh at its next buffer."""
        if value:
            for i in range(len(self.pending_reset)):
                self.pending_reset[i] = True
        return 0

    @torch.jit.export
    def get_reset_item(self) -> int:
        return -1

    @torch.jit.export
    def set_reset_item(self, index: int) -> int:
        """Restart batch item ``index`` (an mc.nn~ channel) of every method at its next buffer; -1 if negative."""
        if index < 0:
            return -1
        for i in range(len(self.pending_items)):
            self.pending_items[i].append(index)
        return 0

    @torch.jit.export
    def set_sample_rate(self, sample_rate: int) -> None:
        """The host's sample rate (recorded; the model runs at the rate it was trained for, ``get_sample_rate()``)."""
        self.sr = sample_rate

    @torch.jit.export
    def get_sample_rate(self) -> int:
        """The sample rate the model was exported for (0 if unknown)."""
        return self.sample_rate

    @torch.jit.export
    def get_streamify_info(self) -> Dict[str, str]:
        """streamify version, sample rate, and per method its delay, ratios and buffer multiple."""
        return self.streamify_info

    def before_call(self, index: int, x: Tensor) -> Tensor:
        """The host's buffer for method ``index``, before its stream (subclasses adapt it; here unchanged)."""
        return x

    def after_call(self, index: int, y: Tensor) -> Tensor:
        """Method ``index``'s stream output, before it is returned (subclasses adapt it; here unchanged)."""
        return y
