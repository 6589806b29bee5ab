"""The base of every streaming module: timing attributes, state life cycle, validation.

A streaming module processes a signal ``[batch, channels, time]`` one buffer after
another. Concatenated, its outputs equal the output of the same module run offline
on the whole signal, delayed by ``delay`` output frames. Each module is configured
once, at construction (and again by the container that holds it), with the delay of
the stream that feeds it; its caches are sized from that, and they are allocated
for the batch size of the first buffer of each stream.

Warm-up: frames of a stream that lie before the start of the offline signal (the
first ``input_delay`` frames a module receives) carry no offline counterpart. A
module that mixes frames over time replaces them by its offline padding value, so
that a stream started fresh reproduces offline zero padding exactly; the outermost
module ("root") also zeroes its own first ``delay`` output frames. A fresh stream
therefore outputs ``delay`` zero frames followed by the offline output.
"""

from __future__ import annotations

from fractions import Fraction
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

#: the warm-up positions ``[batch]`` that every streaming module carries besides its own state:
#: input frames received (``warm_pos``) and output frames emitted (``out_warm_pos``, the root's),
#: each clamped at the warm-up length
WARMUP_STATE: Tuple[str, ...] = ("warm_pos", "out_warm_pos")


class StreamingError(RuntimeError):
    """A streaming call or configuration was refused; the message says where and what to do."""


def busy_message(name: str, sticky: bool = True) -> str:
    """The one-line refusal of a call that overlaps another on the same stream (TorchScript-compatible).

    ``sticky``: the guard stays set when a call raises midway (until ``reset()``), and the message says so.
    """
    after_raise = " (or its last call raised midway: call reset())" if sticky else ""
    return (
        "streamify: "
        + name
        + ": the stream is already running a buffer on another thread"
        + after_raise
        + "; a stream is one sequence of buffers: use one stream per thread (copy.deepcopy / "
        "streamify.convert again) or a lock"
    )


def _over_axes(mask: Tensor, ndim: int) -> Tensor:
    """A per-frame mask ``[batch, n]`` shaped to broadcast over a tensor ``[batch, ..., n]`` of ``ndim`` axes."""
    return mask.view([mask.size(0)] + [1] * (ndim - 2) + [mask.size(1)])


class StreamingModule(nn.Module):
    """Base class of streamify's streaming layers and containers.

    Attributes (read them, never set them by hand):
        delay: output frames by which the streamed output lags the offline output,
            given the stream delay ``input_delay`` that feeds the module (0 for a model
            used on its own).
        input_delay: delay of the input stream, in input frames.
        ratio_num, ratio_den: input samples per output frame, as a fraction
            (see :attr:`ratio`): 2 for a stride-2 conv, 1/2 for a 2x upsampler.
        buffer_multiple: accepted input lengths are positive multiples of this.
        receptive_field: input frames that one output frame depends on (-1: unbounded,
            as for recurrent layers).
        in_channels, out_channels: channel counts (-1 where any count is accepted or
            the count follows the input).
        input_rank, complex_input: the buffers a root module takes (rank 3 by default; ``-k``: any rank
            from ``k`` on, time last; complex for spectrograms). Containers take their first module's.
        changes_layout: True where the output's axes differ from the input's (frames, spectra).
        streaming: when False, ``forward`` runs the offline computation (training).
        check_finite: when True, a root module refuses buffers with NaN or inf.
        busy: True while a root module runs a buffer (see "Threads" below).

    Threads: a stream is one sequence of buffers and is not thread-safe. A root module refuses a
    call that starts while another call on it is running (from another thread) with a
    :class:`StreamingError`: one bool checked and set per buffer, a guard that catches overlapping
    calls, not a lock. A call that raises after validation (inside a layer, an interrupt) leaves the
    guard set, in eager Python as in TorchScript (which has no ``try``/``finally``): the state is then
    half-advanced, so later calls are refused until :meth:`reset` (the whole stream) clears it.

    Shape:
        ``forward`` (streaming): input ``[batch, in_channels, n]``, ``n`` a positive multiple of
        ``buffer_multiple``; output ``[batch, out_channels, n / ratio]``. ``offline``: a whole signal
        ``[batch, in_channels, t]`` to what the offline layer returns.

    >>> from streamify.layers import Conv1d
    >>> conv = Conv1d(1, 1, kernel_size=4, stride=2, padding=1)
    >>> conv.delay, conv.ratio, conv.buffer_multiple, conv.receptive_field
    (1, Fraction(2, 1), 2, 4)
    """

    __jit_unused_properties__ = ["ratio", "cache_bytes"]
    #: the module's own state: names of its state buffers, each ``[batch, ...]`` (declared once per
    #: layer class; :meth:`state_names` adds the warm-up positions that every module has)
    _state_buffers: Tuple[str, ...] = ()
    #: what the layer class is in time (read by :mod:`streamify.layers.timeline` and the converter's checks):
    #: it may take a stream ahead of offline (negative delay: window ops, time shifts); it may output one
    #: from an on-time stream (pads); an early stream in stays early out (time shifts)
    takes_early_stream: bool = False
    makes_early_stream: bool = False
    keeps_early_stream: bool = False
    #: it holds matmul weights whose product :func:`streamify.tune` times and the native products may run
    tunable_matmul: bool = False

    def starts_exact(self) -> bool:
        """Whether a fresh stream equals the offline output from its first frame once paddings that read
        the signal are zeros (False for linear upsampling, ``count_include_pad=False``): verification
        compares the others after a receptive field."""
        return True

    def pad_with_zeros(self) -> bool:
        """Switch a padding that reads the signal (reflect, replicate, circular) to zero padding, whose
        stream is exact from the first frame; returns whether it switched (verification's copies)."""
        return False

    def __init__(self) -> None:
        super().__init__()
        self.layer_name: str = type(self).__name__
        self.is_root: bool = True
        self.streaming: bool = True
        self.check_finite: bool = False
        self.busy: bool = False
        self.input_delay: int = 0
        self.delay: int = 0
        self.ratio_num: int = 1
        self.ratio_den: int = 1
        self.buffer_multiple: int = 1
        self.receptive_field: int = 1
        # the rank of the buffers the module takes (time last; -k: any from k on) and whether they are
        # complex (a spectrogram): checked at the root; the message that refuses a buffer names the layout
        self.input_rank: int = 3
        self.complex_input: bool = False
        self.input_layout: str = "[batch, channels, time]"
        # whether the output's axes differ from the input's (frames, spectra): containers then stop
        # following the channel count through the module
        self.changes_layout: bool = False
        self.in_channels: int = -1
        self.out_channels: int = -1
        self.stream_batch: int = 0
        # whether input frames before the offline start are replaced by ``pad_value``
        self.masks_input: bool = True
        self.pad_value: float = 0.0
        self.warm_left: int = 0
        self.out_warm_left: int = 0
        # explicit state (see `streamify.runtime.state.step`): the caller provides the state tensors, the
        # warm-up masks are computed with tensor ops on every call (no shortcut on the Python counters)
        # and nothing is allocated; this is the path that ONNX export traces
        self.explicit_state: bool = False
        self.register_buffer("warm_pos", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("out_warm_pos", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("dtype_marker", torch.zeros(0), persistent=False)

    # ------------------------------------------------------------------ timing (Python side)
    @property
    def ratio(self) -> Fraction:
        """Input samples per output frame."""
        return Fraction(self.ratio_num, self.ratio_den)

    def _set_ratio(self, ratio: Fraction) -> None:
        ratio = Fraction(ratio)
        self.ratio_num, self.ratio_den = ratio.numerator, ratio.denominator

    def configure(self, input_delay: int = 0) -> None:
        """Set the delay of the stream feeding this module and derive its own timing.

        Containers call this on their children; a module used on its own keeps 0.
        The state returns to that of a fresh stream.
        """
        self.input_delay = int(input_delay)
        self._configure()
        self.reset()

    def _configure(self) -> None:
        """Derive ``delay`` and cache sizes from ``input_delay`` (subclasses)."""
        self.delay = self.input_delay

    def _adopt_input(self, first: StreamingModule) -> None:
        """Take the buffers that ``first`` takes (containers: their first module; see ``input_rank``)."""
        self.input_rank = first.input_rank
        self.complex_input = first.complex_input
        self.input_layout = first.input_layout

    def set_name(self, name: str) -> None:
        """Set the qualified name used in error messages (containers recurse)."""
        self.layer_name = name

    def state_names(self) -> Tuple[str, ...]:
        """Names of this module's state buffers (its own, then the warm-up positions ``[batch]``), not its children's."""
        return tuple(self._state_buffers) + WARMUP_STATE

    @property
    def cache_bytes(self) -> int:
        """Bytes held now by the caches of this module and its streaming children."""
        total = 0
        for module in self.modules():
            if isinstance(module, StreamingModule):
                for name in module.state_names():
                    total += getattr(module, name).nelement() * getattr(module, name).element_size()
        return total

    # ------------------------------------------------------------------ computation
    def forward(self, x: Tensor) -> Tensor:
        """Process one buffer ``[batch, in_channels, n]`` into ``[batch, out_channels, n / ratio]``.

        A layer inside a model (not the root) goes straight to :meth:`stream`: its buffer was validated at
        the root. With ``streaming`` False, runs the offline computation instead.
        """
        if self.streaming and not self.is_root:
            self._begin(x)
            return self.stream(x)
        return self._root_call(x)

    def _root_call(self, x: Tensor) -> Tensor:
        """A call of the root (or in offline mode): validation, the thread guard, :meth:`advance`."""
        if not self.streaming:
            return self.offline(x)
        self._validate(x)
        if self.busy:  # the thread guard: see the class docstring
            raise StreamingError(busy_message(self.layer_name))
        self._set_busy(True)
        y = self.advance(x)
        self._set_busy(False)
        return y

    def _set_busy(self, busy: bool) -> None:
        """Set the thread guard; eager Python writes past ``nn.Module.__setattr__`` (microseconds per call)."""
        if torch.jit.is_scripting():
            self.busy = busy
        else:
            self.__dict__["busy"] = busy

    def advance(self, x: Tensor) -> Tensor:
        """One buffer that the caller has validated (:meth:`_validate`), the caller holding the thread guard.

        What :meth:`forward` runs after its checks; :class:`~streamify.runtime.buffering.AnyLengthStream` and
        :func:`streamify.runtime.state.step`, which check the buffer themselves, call it directly.
        """
        self._begin(x)
        y = self.stream(x)
        if self.is_root and self.delay > 0 and (self.out_warm_left > 0 or self.explicit_state):
            y = self._mask_output(y)
        return y

    def stream(self, x: Tensor) -> Tensor:
        """One streaming step; the state is ready for ``x``'s batch size (subclasses)."""
        raise NotImplementedError

    def offline(self, x: Tensor) -> Tensor:
        """The offline computation over a whole signal, without touching the state (subclasses)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ state life cycle
    @torch.jit.export
    def reset(self, indices: Optional[List[int]] = None) -> None:
        """Return to a fresh stream: the whole batch, or only the batch items ``indices``."""
        self._reset_own(indices)
        self._reset_children(indices)

    def _reset_children(self, indices: Optional[List[int]]) -> None:
        """Reset the streaming children (containers)."""
        pass

    def _reset_own(self, indices: Optional[List[int]]) -> None:
        if indices is None:
            self.busy = False  # a call that raised midway left the guard set: the fresh stream clears it
            self.stream_batch = 0
            self.warm_left = 0
            self.out_warm_left = 0
            self.warm_pos = torch.zeros(0, dtype=torch.long, device=self.warm_pos.device)
            self.out_warm_pos = torch.zeros(0, dtype=torch.long, device=self.out_warm_pos.device)
            self._release_state()
        elif self.stream_batch > 0:
            for i in indices:
                if i < 0 or i >= self.stream_batch:
                    raise StreamingError(
                        "streamify: "
                        + self.layer_name
                        + f": reset index {i} is outside the stream's batch of {self.stream_batch}"
                    )
            index = torch.tensor(indices, dtype=torch.long, device=self.warm_pos.device)
            self._reset_items(index)
            self._restart_warmup(index)

    def _allocate(self, x: Tensor) -> None:
        """Create the state for the batch size, dtype and device of ``x`` (subclasses)."""
        pass

    def _release_state(self) -> None:
        """Drop the state, back to empty tensors (subclasses)."""
        pass

    def _reset_items(self, index: Tensor) -> None:
        """Return the state of batch items ``index`` to that of a fresh stream (subclasses)."""
        pass

    def _begin(self, x: Tensor) -> None:
        if self.explicit_state:
            return  # the state was given by the caller
        if self.stream_batch == 0:
            batch = x.size(0)
            self.warm_pos = torch.zeros(batch, dtype=torch.long, device=x.device)
            self.out_warm_pos = torch.zeros(batch, dtype=torch.long, device=x.device)
            self._allocate(x)
            self.stream_batch = batch
            self._restart_warmup(None)
        elif x.size(0) != self.stream_batch:  # an inner layer called on its own (the root checked its buffer)
            self._check_batch(x.size(0))

    def _check_batch(self, batch: int) -> None:
        if self.stream_batch != 0 and batch != self.stream_batch:
            raise StreamingError(
                "streamify: "
                + self.layer_name
                + f": the batch size changed from {self.stream_batch} to {batch} in the middle of a stream; "
                "call reset() before streaming with another batch size"
            )

    def _restart_warmup(self, index: Optional[Tensor]) -> None:
        if self.masks_input and self.input_delay > 0:
            if index is None:
                self.warm_pos.zero_()
            else:
                if self.warm_left <= 0:
                    self.warm_pos.fill_(self.input_delay)
                self.warm_pos.index_fill_(0, index, 0)
            self.warm_left = self.input_delay
        if self.is_root and self.delay > 0:
            if index is None:
                self.out_warm_pos.zero_()
            else:
                if self.out_warm_left <= 0:
                    self.out_warm_pos.fill_(self.delay)
                self.out_warm_pos.index_fill_(0, index, 0)
            self.out_warm_left = self.delay

    def _mask_input(self, x: Tensor) -> Tensor:
        """Replace the frames that precede the offline signal's start by the padding value.

        The Python counter ``warm_left`` skips the mask once the warm-up is over; with
        ``explicit_state`` the mask is computed from ``warm_pos`` on every call.
        """
        if not (self.masks_input and self.input_delay > 0):
            return x
        if self.warm_left <= 0 and not self.explicit_state:
            return x
        n = x.size(-1)
        position = self.warm_pos.unsqueeze(1) + torch.arange(n, device=x.device).unsqueeze(0)
        x = x.masked_fill(_over_axes(position < self.input_delay, x.dim()), self.pad_value)
        self.warm_pos = torch.clamp(self.warm_pos + n, max=self.input_delay)
        if not self.explicit_state:
            self.warm_left -= n
        return x

    def _mask_output(self, y: Tensor) -> Tensor:
        """Zero the first ``delay`` output frames of a fresh stream (root only; see :meth:`_mask_input`)."""
        if self.delay <= 0:
            return y
        if self.out_warm_left <= 0 and not self.explicit_state:
            return y
        n = y.size(-1)
        position = self.out_warm_pos.unsqueeze(1) + torch.arange(n, device=y.device).unsqueeze(0)
        y = y.masked_fill(_over_axes(position < self.delay, y.dim()), 0.0)
        self.out_warm_pos = torch.clamp(self.out_warm_pos + n, max=self.delay)
        if not self.explicit_state:
            self.out_warm_left -= n
        return y

    # ------------------------------------------------------------------ validation
    def _validate(self, x: Tensor) -> None:
        """Refuse a buffer the module cannot take, before any state changes."""
        if x.dim() != self.input_rank and (self.input_rank > 0 or x.dim() < -self.input_rank):
            raise StreamingError(
                "streamify: " + self.layer_name + f": expected a buffer {self.input_layout}, got {x.dim()} dimensions"
            )
        if self.in_channels >= 0 and x.size(1) != self.in_channels:
            raise StreamingError(
                "streamify: " + self.layer_name + f": expected {self.in_channels} input channels, got {x.size(1)}"
            )
        n = x.size(-1)
        if n <= 0 or n % self.buffer_multiple != 0:
            raise StreamingError(
                "streamify: "
                + self.layer_name
                + f": buffer length {n} is not accepted; lengths must be positive multiples of "
                f"buffer_multiple={self.buffer_multiple} (e.g. {self.buffer_multiple}, {2 * self.buffer_multiple}, {4 * self.buffer_multiple})"
            )
        if self.complex_input:
            wrong_dtype = not x.is_complex() or torch.real(x).dtype != self.dtype_marker.dtype
        else:
            wrong_dtype = x.dtype != self.dtype_marker.dtype
        if wrong_dtype:
            want = self.dtype_marker
            if self.complex_input:
                want = torch.complex(want, want)
            raise StreamingError(
                "streamify: "
                + self.layer_name
                + ": expected dtype "
                + str(want.dtype)
                + ", got "
                + str(x.dtype)
                + "; convert the input, or the model with .to(dtype)"
            )
        if not self.explicit_state:  # the state given sets the batch (see streamify.runtime.state.step)
            self._check_batch(x.size(0))
        if self.check_finite and not bool(torch.isfinite(x).all()):
            raise StreamingError("streamify: " + self.layer_name + ": the buffer holds NaN or infinite values")

    def extra_repr(self) -> str:
        return f"delay={self.delay}, ratio={self.ratio}, buffer_multiple={self.buffer_multiple}"
