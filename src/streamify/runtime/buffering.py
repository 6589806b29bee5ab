"""Streams that take buffers of any length, at an exactly known extra latency.

A streaming model takes buffers whose length is a multiple of its ``buffer_multiple``
``M`` (input frames; 2048 for a RAVE-sized model). A host picks its own buffer length
``n``: :class:`AnyLengthStream` accumulates input until it holds a multiple of ``M``,
runs the model on it and hands out the output from a queue that starts with
``M - gcd(n, M)`` input frames' worth of zeros. That is the least extra latency that
never lets the queue run dry, and 0 when ``n`` is a multiple of ``M``: buffers of 256
frames into a model of multiple 2048 add 1792 frames.

The extra latency is fixed when a stream starts, by the length of its first buffer.
Later buffers of another length are taken while that latency covers them (a multiple of
``M`` always is); a length it does not cover, or another batch size, restarts the stream
(after the buffer was validated: a refused buffer changes nothing). A per-item reset
(:meth:`AnyLengthStream.reset` with indices) takes effect at the next call that starts
with no input held back (at most ``M / gcd(n, M)`` calls later), so that the item
restarts exactly as a fresh stream: ``delay + extra`` zero frames, then the offline output.

The module is TorchScript-compatible: the nn~ export (``streamify.export``) wraps each
method's stream in one.
"""

from typing import List, Optional

import torch
from torch import Tensor, nn

from streamify.layers.base import StreamingError, StreamingModule, busy_message


def _gcd(a: int, b: int) -> int:
    while b != 0:
        a, b = b, a % b
    return a


def extra_latency_frames(length: int, multiple: int) -> int:
    """Input frames of extra latency for a stream fed buffers of ``length`` frames: ``M - gcd(length, M)``."""
    return multiple - _gcd(length, multiple)


def dtype_name(dtype: torch.dtype) -> str:
    """``"float32"`` for ``torch.float32``... (TorchScript prints dtypes as bare type codes)."""
    if dtype == torch.float32:
        return "float32"
    if dtype == torch.float64:
        return "float64"
    if dtype == torch.float16:
        return "float16"
    if dtype == torch.bfloat16:
        return "bfloat16"
    if dtype == torch.int64:
        return "int64"
    if dtype == torch.int32:
        return "int32"
    if dtype == torch.int16:
        return "int16"
    if dtype == torch.int8:
        return "int8"
    if dtype == torch.uint8:
        return "uint8"
    if dtype == torch.bool:
        return "bool"
    if dtype == torch.complex64:
        return "complex64"
    if dtype == torch.complex128:
        return "complex128"
    return "dtype code " + str(dtype)


class AnyLengthStream(nn.Module):
    """A streaming model that takes buffers ``[batch, in_channels, n]`` of any length ``n``.

    ``n`` must give a whole number of output frames (``n / ratio``). The output lags the
    offline output by ``stream.delay + extra`` output frames, ``extra`` =
    :meth:`extra_output_frames` of the stream's first buffer length (0 for multiples of
    ``buffer_multiple``).

    Attributes (TorchScript): ``stream`` (the wrapped model), ``buffer_multiple``,
    ``ratio_num`` / ``ratio_den`` (input frames per output frame), ``stream_batch`` (0: no
    stream yet), ``extra`` (extra input frames of the running stream, -1 before it starts),
    ``pending`` (input held back), ``ready`` (output queued) and ``busy`` (a call is running: a call
    that overlaps it, from another thread, is refused with :class:`StreamingError`; a call that raised
    after validation leaves it set until ``reset()``, as for :class:`~streamify.layers.base.StreamingModule`).

    Shape:
        input ``[batch, in_channels, n]``, any ``n`` with ``n / ratio`` whole; output
        ``[batch, out_channels, n / ratio]``, ``stream.delay + extra`` frames behind offline.

    Buffers of 6 frames into a model of multiple 4 add ``4 - gcd(6, 4) = 2`` frames of latency:

    >>> import torch
    >>> from streamify.layers import Conv1d, ConvTranspose1d, Sequential
    >>> model = Sequential(Conv1d(1, 2, 4, stride=4), ConvTranspose1d(2, 1, 4, stride=4))
    >>> model.delay, model.buffer_multiple
    (0, 4)
    >>> stream = AnyLengthStream(model)
    >>> stream.extra_output_frames(6)
    2
    >>> x = torch.randn(1, 1, 24)
    >>> y = torch.cat([stream(x[..., i : i + 6]) for i in range(0, 24, 6)], -1)
    >>> y.shape
    torch.Size([1, 1, 24])
    >>> torch.allclose(y[..., 2:], model.offline(x)[..., :22], atol=1e-6)
    True
    """

    queued: List[int]  # TorchScript reads the type of an empty list from the class

    def __init__(self, stream: StreamingModule, name: str = "") -> None:
        super().__init__()
        if int(stream.out_channels) < 0:
            raise StreamingError(
                f"streamify: AnyLengthStream: {stream.layer_name} does not know its output channels; "
                "wrap a model made by streamify.convert"
            )
        rank = int(stream.input_rank)  # -k: any rank from k on
        if not (rank == 3 or -3 <= rank < 0) or bool(stream.complex_input):
            raise StreamingError(
                f"streamify: AnyLengthStream: {stream.layer_name} takes buffers {stream.input_layout}; "
                "AnyLengthStream streams models of real [batch, channels, time] buffers only"
            )
        self.stream = stream
        self.name: str = name or stream.layer_name
        self.buffer_multiple: int = int(stream.buffer_multiple)
        self.ratio_num: int = int(stream.ratio_num)
        self.ratio_den: int = int(stream.ratio_den)
        self.in_channels: int = int(stream.in_channels)
        self.out_channels: int = int(stream.out_channels)
        self.delay: int = int(stream.delay)
        self.stream_batch: int = 0
        self.extra: int = -1
        self.busy: bool = False
        #: refuse buffers with NaN or inf (the model's own ``check_finite`` when wrapped: its checks are made here)
        self.check_finite: bool = bool(stream.check_finite)
        self.queued = []
        self.register_buffer("dtype_marker", torch.zeros(0, dtype=stream.dtype_marker.dtype), persistent=False)
        self.register_buffer("pending", torch.zeros(0, 0, 0), persistent=False)
        self.register_buffer("ready", torch.zeros(0, 0, 0), persistent=False)

    # ------------------------------------------------------------------ latency
    @torch.jit.export
    def extra_input_frames(self, length: int) -> int:
        """Extra latency, in input frames, of a stream whose first buffer holds ``length`` frames."""
        return extra_latency_frames(length, self.buffer_multiple)

    @torch.jit.export
    def extra_output_frames(self, length: int) -> int:
        """The same in output frames (what the output lags by, on top of ``delay``)."""
        return self.extra_input_frames(length) * self.ratio_den // self.ratio_num

    @torch.jit.export
    def accepts(self, length: int) -> bool:
        """Whether buffers of ``length`` input frames give a whole number of output frames."""
        return length > 0 and (length * self.ratio_den) % self.ratio_num == 0

    # ------------------------------------------------------------------ state
    @torch.jit.export
    def reset(self, indices: Optional[List[int]] = None) -> None:
        """Back to a fresh stream now (``None``), or batch items ``indices`` (applied at the next aligned call;
        items outside the batch are ignored)."""
        if indices is None:
            self.busy = False  # a call that raised midway left the guard set: the fresh stream clears it
            self._restart()
        else:
            for item in indices:
                if item >= 0 and item not in self.queued:
                    self.queued.append(item)

    def _restart(self) -> None:
        """Drop the running stream (its state, held input, queued output); the guard is left as it is."""
        self.stream.reset(None)
        self.stream_batch = 0
        self.extra = -1
        self.queued = torch.jit.annotate(List[int], [])
        self.pending = torch.zeros(0, 0, 0, dtype=self.pending.dtype, device=self.pending.device)
        self.ready = torch.zeros(0, 0, 0, dtype=self.ready.dtype, device=self.ready.device)

    def _validate(self, x: Tensor) -> None:
        """Refuse a buffer before anything changes (no reset, no state touched)."""
        where = "streamify: " + self.name
        if x.dim() != 3:
            raise StreamingError(
                where + ": expected a buffer [batch, channels, time], got " + str(x.dim()) + " dimensions"
            )
        if self.in_channels >= 0 and x.size(1) != self.in_channels:
            raise StreamingError(
                where + ": expected " + str(self.in_channels) + " input channels, got " + str(x.size(1))
            )
        if x.size(0) <= 0:
            raise StreamingError(where + ": the buffer holds no batch item")
        n = x.size(2)
        if not self.accepts(n):
            raise StreamingError(
                where
                + ": buffer length "
                + str(n)
                + " is not accepted; lengths must be positive multiples of "
                + str(self.ratio_num)
                + " (one output frame per "
                + str(self.ratio_num)
                + " input frames)"
            )
        expected = self.dtype_marker.dtype
        if x.dtype != expected:
            raise StreamingError(
                where
                + ": expected dtype "
                + dtype_name(expected)
                + ", got "
                + dtype_name(x.dtype)
                + "; convert the input to "
                + dtype_name(expected)
            )
        if self.check_finite and not bool(torch.isfinite(x).all()):
            raise StreamingError(where + ": the buffer holds NaN or infinite values")

    def _start(self, x: Tensor) -> None:
        batch = x.size(0)
        self.extra = self.extra_input_frames(x.size(2))
        self.stream_batch = batch
        self.queued = torch.jit.annotate(List[int], [])
        self.pending = x.new_zeros(batch, x.size(1), 0)
        self.ready = x.new_zeros(batch, self.out_channels, self.extra * self.ratio_den // self.ratio_num)

    def _apply_queued(self) -> None:
        items: List[int] = []
        for item in self.queued:
            if item < self.stream_batch and item not in items:
                items.append(item)
        self.queued = torch.jit.annotate(List[int], [])
        if len(items) > 0:
            self.stream.reset(items)
            if self.ready.size(2) > 0:  # the item's queued output belongs to its old stream: a fresh one is silent
                index = torch.tensor(items, dtype=torch.long, device=self.ready.device)
                self.ready = self.ready.index_fill(0, index, 0.0)

    # ------------------------------------------------------------------ computation
    def forward(self, x: Tensor) -> Tensor:
        """Stream one buffer ``[batch, in_channels, n]`` of any accepted length into ``[batch, out_channels, n / ratio]``.

        The buffer is validated here, once, before anything changes; the model then runs on whole multiples of
        its ``buffer_multiple`` through its :meth:`~streamify.layers.base.StreamingModule.advance`, which does
        not check them again.
        """
        self._validate(x)
        if self.busy:  # the thread guard
            raise StreamingError(busy_message(self.name))
        self._set_busy(True)
        usable = self._take(x)
        y = self.stream.advance(usable) if usable.size(2) > 0 else self.ready.narrow(2, 0, 0)
        y = self._give(y, x.size(2))
        self._set_busy(False)
        return y

    def _set_busy(self, busy: bool) -> None:
        """Set the thread guard; eager Python writes past ``nn.Module.__setattr__`` (microseconds per call)."""
        if torch.jit.is_scripting():
            self.busy = busy
        else:
            self.__dict__["busy"] = busy

    @torch.jit.export
    def advance(self, x: Tensor) -> Tensor:
        """One buffer that the caller has validated, the caller holding the guard (:meth:`forward` less its checks)."""
        usable = self._take(x)
        y = self.stream.advance(usable) if usable.size(2) > 0 else self.ready.narrow(2, 0, 0)
        return self._give(y, x.size(2))

    def _take(self, x: Tensor) -> Tensor:
        """The input the model runs on now (a multiple of ``buffer_multiple`` frames, maybe none): ``x`` with
        the input held back before it; holds back the rest. Restarts the stream first where ``x`` needs it."""
        n = x.size(2)
        if self.stream_batch != 0:
            held = self.pending.size(2)
            if x.size(0) != self.stream_batch or (held + n) % self.buffer_multiple > self.extra:
                # another batch size (mc.nn~ channels), or a length the latency does not cover: restart
                self._restart()
        if self.stream_batch == 0:
            self.stream.reset(None)
            self._start(x)
        if len(self.queued) > 0 and self.pending.size(2) == 0:
            self._apply_queued()
        if self.extra == 0:  # every buffer is a multiple: no accumulation, no extra latency
            return x
        signal = torch.cat([self.pending, x], 2) if self.pending.size(2) > 0 else x
        usable = signal.size(2) - signal.size(2) % self.buffer_multiple
        self.pending = signal.narrow(2, usable, signal.size(2) - usable).clone()  # never a view of the caller's buffer
        return signal.narrow(2, 0, usable).contiguous()

    def _give(self, y: Tensor, n: int) -> Tensor:
        """The output for an input buffer of ``n`` frames: the model's output ``y`` queued behind the output
        already made, and the first ``n / ratio`` frames of that queue handed out."""
        if self.extra == 0:
            return y
        if y.size(2) > 0:
            self.ready = torch.cat([self.ready, y], 2)
        out_frames = n * self.ratio_den // self.ratio_num
        out = self.ready.narrow(2, 0, out_frames).contiguous()
        self.ready = self.ready.narrow(2, out_frames, self.ready.size(2) - out_frames)
        return out
