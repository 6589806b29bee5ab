"""nn~'s contract: the checks an exported method must pass before a file is written.

nn~ (and any real-time host that calls a method the same way: the ONNX export checks its
streams with the same signal) calls a method buffer after buffer, with the buffer size the user
chose (a power of two for nn~) and one stream per batch item (mc.nn~ sends several).
:func:`check_nn_contract` streams a seeded signal through the method the way a host
does, for each buffer size and for batch sizes 1 and 2, and refuses (naming the
method, the buffer size and the reason) unless:

* every call returns one float32 tensor ``[batch, out_channels, n / out_ratio]`` of
  finite values;
* the concatenated output does not depend on the buffer size or on the other batch
  items, and a second run from a fresh stream repeats the first (determinism);
* it equals the offline output shifted by the method's delay (relative error
  <= :data:`REL_TOL` to the offline peak, float32) from the first frame, or, for models
  whose non-zero padding differs at the very start of a stream (reflect, replicate),
  after the receptive field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from streamify.exactness import compare_streamed
from streamify.export.methods import ConvertedMethod
from streamify.layers.base import StreamingError

#: max error of a float32 stream against offline (and across buffer sizes), relative to the offline peak
REL_TOL = 1e-4
#: max difference between two runs of the same stream, relative to the offline peak
REPEAT_TOL = 1e-7


@dataclass
class ContractReport:
    """What :func:`check_nn_contract` verified for one method."""

    method: str
    buffer_sizes: List[int]
    batch_sizes: List[int]
    max_rel_error: float
    warmup_frames: int
    compared_frames: int
    notes: List[str] = field(default_factory=list)


def contract_signal(method: ConvertedMethod, frames: int, batch: int, seed: int = 0) -> Tensor:
    """A seeded float32 input ``[batch, in_channels, frames]``: noise with the per-channel mean and spread of
    the method's example (audio, or latents for a method that takes another's output)."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(batch, method.in_channels, frames, generator=generator, dtype=torch.float64)
    example = method.example.to(torch.float64)
    mean = example.mean(dim=(0, 2)).view(1, -1, 1)
    std = example.std(dim=(0, 2)).view(1, -1, 1) if example.size(0) * example.size(2) > 1 else torch.ones_like(mean)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (noise * std + mean).to(torch.float32)


def _fail(where: str, method: str, n: int, batch: int, reason: str) -> StreamingError:
    return StreamingError(
        f"streamify: {where}: method {method!r} breaks the real-time host contract at buffer size {n} samples, "
        f"batch {batch}: {reason}"
    )


def _stream(
    call: Callable[[Tensor], Tensor],
    x: Tensor,
    frames_per_call: int,
    out_frames: int,
    out_channels: int,
    where: str,
    method: str,
    n: int,
    optimized: bool = False,
) -> Tensor:
    outputs = []
    batch = x.size(0)
    # inference mode like nn~; TorchScript's profiling executor re-optimises for every new shape (slow): the
    # sweep runs without it, and one run at nn~'s default buffer size with it, as nn~ runs
    with torch.inference_mode(), torch.jit.optimized_execution(optimized):
        for start in range(0, x.size(-1), frames_per_call):
            chunk = x[..., start : start + frames_per_call].contiguous()
            try:
                y = call(chunk)
            except Exception as error:  # a host sees the same failure
                raise _fail(where, method, n, batch, f"the call raised {type(error).__name__}: {error}") from error
            if not isinstance(y, Tensor):
                raise _fail(where, method, n, batch, f"returns a {type(y).__name__}, not one tensor")
            expected = (batch, out_channels, out_frames)
            if tuple(y.shape) != expected:
                raise _fail(where, method, n, batch, f"returns shape {tuple(y.shape)}, the host expects {expected}")
            if y.dtype != torch.float32:
                raise _fail(where, method, n, batch, f"returns {y.dtype}, the host reads float32")
            if not bool(torch.isfinite(y).all()):
                raise _fail(where, method, n, batch, "returns NaN or infinite values")
            outputs.append(y.clone())
    return torch.cat(outputs, -1)


def check_nn_contract(
    method: ConvertedMethod,
    call: Callable[[Tensor], Tensor],
    reset: Callable[[], None],
    sizes: List[int],
    where: str,
    batch_sizes: Optional[List[int]] = None,
    extra_frames: Optional[Callable[[int], int]] = None,
) -> ContractReport:
    """Stream a signal through ``call`` like a host and refuse a broken contract (see the module docstring).

    ``sizes`` are host buffer sizes in audio samples; ``reset()`` must return every stream
    of ``call`` to a fresh one. ``extra_frames(n)``: output frames of latency that buffers of
    ``n`` samples add on top of the method's delay (accumulation up to its buffer multiple).
    """
    batch_sizes = batch_sizes or [1, 2]
    sweep = _Sweep.plan(method, call, sizes, max(batch_sizes), where, extra_frames)
    first: Optional[Tensor] = None  # batch item 0 of the first run: what every other run must repeat
    worst = 0.0
    warmup_used = 0
    compared = 0
    for n in sizes:
        for batch in batch_sizes:
            reset()
            y = sweep.aligned(n, batch, silent_start=True)
            if first is None:
                first = y[:1]
                reset()
                _check_repeatable(sweep, first, sweep.aligned(n, 1), n, batch)
            _check_independent(sweep, first, y, n, batch, sizes[0])
            for item in range(batch):
                error, warmup, frames_compared = _check_offline(sweep, y, item, n, batch)
                worst = max(worst, error)
                warmup_used = max(warmup_used, warmup)
                compared = max(compared, frames_compared)
    assert first is not None
    _check_optimizing_executor(sweep, first, reset, sizes)
    notes: List[str] = []
    if warmup_used:
        notes.append(
            f"the first {warmup_used} output frames of a fresh stream differ from offline (non-zero padding at the "
            "start of the signal), as documented for reflect/replicate padding"
        )
    reset()
    return ContractReport(method.name, list(sizes), list(batch_sizes), worst, warmup_used, compared, notes)


@dataclass
class _Sweep:
    """The seeded signal, its offline output and the number of calls per buffer size of one contract check."""

    method: ConvertedMethod
    call: Callable[[Tensor], Tensor]
    where: str
    x: Tensor  # [max batch, in_channels, frames] float32: the input of every run (a prefix of it)
    offline: Tensor  # [max batch, out_channels, frames]: the offline output of ``x``
    scale: float  # the offline peak (at least 1e-6): errors are relative to it
    extra: Dict[int, int]  # per buffer size: output frames of buffering latency before the delayed output
    calls: Dict[int, int]  # per buffer size: how many calls a run makes

    @staticmethod
    def plan(
        method: ConvertedMethod,
        call: Callable[[Tensor], Tensor],
        sizes: List[int],
        batch: int,
        where: str,
        extra_frames: Optional[Callable[[int], int]],
    ) -> _Sweep:
        extra = {n: int(extra_frames(n)) if extra_frames is not None else 0 for n in sizes}
        # per buffer size, at least 3 buffers and twice the delay: past the warm-up, across buffer boundaries
        calls = {
            n: max(3, math.ceil(2 * (method.delay_samples + extra[n] * method.out_ratio + method.multiple_samples) / n))
            for n in sizes
        }
        longest = max(n * calls[n] for n in sizes)  # audio samples
        x = contract_signal(method, longest // method.in_ratio, batch)
        with torch.no_grad():
            offline = method.stream.offline(x)
        if not isinstance(offline, Tensor) or offline.dtype != torch.float32:
            raise _fail(where, method.name, sizes[0], batch, "the offline method does not return a float32 tensor")
        scale = max(float(offline.abs().max()), 1e-6)
        return _Sweep(method, call, where, x, offline, scale, extra, calls)

    def fail(self, n: int, batch: int, reason: str) -> StreamingError:
        return _fail(self.where, self.method.name, n, batch, reason)

    def aligned(self, n: int, batch: int, silent_start: bool = False, optimized: bool = False) -> Tensor:
        """Run a fresh stream at buffer size ``n`` and drop the buffering latency: every size then lags
        offline by the method's delay. ``silent_start``: refuse a non-silent buffering latency."""
        method = self.method
        full = _stream(
            self.call,
            self.x[:batch, :, : n * self.calls[n] // method.in_ratio],
            n // method.in_ratio,
            n // method.out_ratio,
            method.out_channels,
            self.where,
            method.name,
            n,
            optimized,
        )
        extra = self.extra[n]
        if silent_start and extra and float(full[..., :extra].abs().max()) != 0.0:
            raise self.fail(n, batch, f"the first {extra} frames (the buffering latency) are not silent")
        return full[..., extra:]

    def difference(self, y: Tensor, first: Tensor) -> float:
        """Max difference of ``y``'s first batch item to ``first`` over their common frames (not relative)."""
        common = min(first.size(-1), y.size(-1))
        return float((y[:1, :, :common] - first[:, :, :common]).abs().max())


def _check_repeatable(sweep: _Sweep, first: Tensor, again: Tensor, n: int, batch: int) -> None:
    """A second run from a fresh stream repeats the first (determinism)."""
    difference = sweep.difference(again, first)
    if difference > REPEAT_TOL * sweep.scale:
        raise sweep.fail(
            n,
            batch,
            f"two runs from a fresh stream differ by {difference:.3g} (nondeterministic: random ops, "
            "dropout or batch statistics in training mode; call model.eval() and remove the noise)",
        )


def _check_independent(sweep: _Sweep, first: Tensor, y: Tensor, n: int, batch: int, first_size: int) -> None:
    """Batch item 0 does not depend on the buffer size or on the other batch items."""
    difference = sweep.difference(y, first) / sweep.scale
    if difference > REL_TOL:
        other = "another batch item" if batch > 1 else "the buffer size"
        raise sweep.fail(
            n,
            batch,
            f"the output depends on {other} (relative difference {difference:.3g} to the first run at "
            f"{first_size} samples, batch 1): the streams are not independent",
        )


def _check_offline(sweep: _Sweep, y: Tensor, item: int, n: int, batch: int) -> Tuple[float, int, int]:
    """Batch item ``item`` equals the offline output shifted by the delay; returns (relative error, warm-up
    frames skipped, frames compared)."""
    error, warmup, compared = _offline_error(sweep.method, y[item : item + 1], sweep.offline[item : item + 1])
    if error > REL_TOL:
        raise sweep.fail(
            n,
            batch,
            f"batch item {item} differs from the offline output shifted by the delay of "
            f"{sweep.method.delay_frames} frames (relative error {error:.3g} > {REL_TOL:g})",
        )
    return error, warmup, compared


def _check_optimizing_executor(sweep: _Sweep, first: Tensor, reset: Callable[[], None], sizes: List[int]) -> None:
    """nn~ runs TorchScript with its optimising executor: one more run, at its default buffer size, that way."""
    default = 4096 if 4096 in sizes else sizes[-1]
    reset()
    y = sweep.aligned(default, 1, optimized=True)
    if sweep.difference(y, first) / sweep.scale > REL_TOL:
        raise sweep.fail(default, 1, "the output differs under TorchScript's optimising executor")


def _offline_error(method: ConvertedMethod, streamed: Tensor, offline: Tensor) -> Tuple[float, int, int]:
    """Relative error of the streamed output against offline: from frame 0, else after the warm-up."""
    delay = method.delay_frames
    scale = max(float(offline.abs().max()), 1e-6)
    strict = compare_streamed(streamed, offline, delay)
    if strict.compared_frames <= 0:
        raise StreamingError(
            f"streamify: method {method.name!r}: no output frame to compare with offline (delay {delay} frames)"
        )
    error = strict.max_abs_error / scale
    if error <= REL_TOL:
        return error, 0, strict.compared_frames
    # non-zero padding (reflect...) differs at the start only: skip the receptive field (half the signal if unbounded)
    field = int(method.stream.receptive_field)
    ratio = method.stream.ratio
    if field >= 0:
        warmup = int(math.ceil(field / ratio)) + 1
    else:
        warmup = strict.compared_frames // 2
    late = compare_streamed(streamed, offline, delay, warmup=warmup)
    if late.compared_frames <= 0:
        return error, 0, strict.compared_frames
    late_error = late.max_abs_error / scale
    if late_error <= REL_TOL:
        return late_error, warmup, late.compared_frames
    return error, 0, strict.compared_frames
