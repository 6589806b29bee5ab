"""The ways of running one model on a clip ``[1, 1, n]`` that the evaluation compares, each timed on this thread.

Every run returns a :class:`Run`: the output aligned with the input (``y[t]`` answers ``x[t]``; a stream's
delay is removed by feeding zeros after the clip and dropping its first ``delay`` samples), the CPU seconds
spent on the calls that consumed the clip in the stream's steady state (``time.thread_time``: with one torch
thread all the work is on this thread, and other processes on the machine do not count; the first calls of
an overlap-add, whose windows are still short, are left out) and the audio they consumed, and the latency
in samples (model delay + buffer). Methods:

* :func:`offline`: the model on the whole clip;
* :func:`streamed`: a :func:`streamify.convert` stream fed consecutive buffers;
* :func:`naive`: each buffer run through the offline model alone (zero padding, no caches): the clicks
  that cached streaming removes;
* :func:`overlap_add`: exact overlap-add (:class:`harness.methods.OverlapAddStream`): each buffer run
  with its left and right context (:func:`ola_context`, from :func:`phase_reach`), cropped.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Callable, List, Tuple

import torch
from torch import Tensor, nn

from harness.methods import OverlapAddStream
from harness.reference import context_from_reach


@dataclass
class Run:
    """One method's output on one clip."""

    y: Tensor  # [1, 1, n], aligned with the input
    cpu_seconds: float  # thread CPU time of the timed calls (steady state, consuming the clip)
    timed_samples: int  # input samples those calls consumed
    latency: int  # samples from an input sample's arrival to its output's (model delay + buffering); 0 offline
    delay: int  # samples by which the raw output lagged the aligned one


def _timed(call: Callable[[Tensor], Tensor], x: Tensor) -> Tuple[Tensor, float]:
    began = time.thread_time()
    y = call(x)
    return y, time.thread_time() - began


def _feed(
    call: Callable[[Tensor], Tensor], x: Tensor, buffer: int, delay: int, skip: int = 0
) -> Tuple[Tensor, float, int]:
    """Feed ``x`` (then zeros, enough to flush ``delay``) in buffers of ``buffer`` samples; the aligned output,
    the CPU seconds of the calls that consumed ``x`` from sample ``skip`` on, and the samples they consumed."""
    n = x.size(-1)
    if n % buffer:
        raise ValueError(f"clip of {n} samples is not a multiple of the buffer {buffer}")
    flush = -(-delay // buffer) * buffer
    padded = torch.cat([x, x.new_zeros(1, 1, flush)], -1)
    outputs: List[Tensor] = []
    seconds = 0.0
    timed = 0
    with torch.inference_mode():
        for start in range(0, padded.size(-1), buffer):
            y, spent = _timed(call, padded[..., start : start + buffer])
            if skip <= start < n:
                seconds += spent
                timed += buffer
            outputs.append(y)
    if not timed:
        raise ValueError(f"a clip of {n} samples has no call past the first {skip} samples to time")
    out = torch.cat(outputs, -1)
    return out[..., delay : delay + n], seconds, timed


def offline(model: nn.Module, x: Tensor) -> Run:
    """The model on the whole clip (its latency is not defined for a stream: reported as 0)."""
    with torch.inference_mode():
        y, seconds = _timed(model, x)
    return Run(y, seconds, x.size(-1), 0, 0)


def streamed(stream: nn.Module, x: Tensor, buffer: int) -> Run:
    """A fresh :func:`streamify.convert` stream fed buffers of ``buffer`` samples."""
    stream.reset()
    delay = int(stream.delay)
    y, seconds, timed = _feed(stream, x, buffer, delay)
    return Run(y, seconds, timed, delay + buffer, delay)


def naive(model: nn.Module, x: Tensor, buffer: int) -> Run:
    """Each buffer through the offline model on its own (zero padding at both ends, no state)."""
    y, seconds, timed = _feed(model, x, buffer, 0)
    return Run(y, seconds, timed, buffer, 0)


def overlap_add(model: nn.Module, x: Tensor, buffer: int, left: int, right: int, period: int) -> Run:
    """Exact overlap-add: each buffer computed by the offline model with ``left`` and ``right`` samples of
    context (see :func:`ola_context`), so its output lags by ``right`` samples. Timed once its windows are
    full (from sample ``left + right`` on)."""
    stream = OverlapAddStream(model, left, right, period)
    y, seconds, timed = _feed(stream, x, buffer, stream.delay, skip=left + right)
    return Run(y, seconds, timed, right + buffer, right)


def phase_reach(
    model: nn.Module, period: int, margin: int, batch: int = 32, dtype: torch.dtype = torch.float32
) -> Tuple[List[int], List[int]]:
    """Per output phase ``t mod period``: how many input samples before and after ``t`` output ``t`` depends on,
    measured by autograd (the support of the gradient of output ``t``; random input, ``margin`` samples of
    signal on each side of one period of outputs).

    Raises:
        ValueError: a dependency reaches the end of the probe (``margin`` is smaller than the receptive field).
    """
    probe = copy.deepcopy(model).to(dtype).eval()
    margin = -(-margin // period) * period
    length = 2 * margin + period
    generator = torch.Generator().manual_seed(0)
    before: List[int] = []
    after: List[int] = []
    for first in range(0, period, batch):
        phases = torch.arange(first, min(first + batch, period))
        x = torch.randn(len(phases), 1, length, generator=generator, dtype=dtype, requires_grad=True)
        y = probe(x)
        y[torch.arange(len(phases)), 0, margin + phases].sum().backward()
        assert x.grad is not None
        for row, phase in enumerate(phases.tolist()):
            support = torch.nonzero(x.grad[row, 0]).flatten()
            lo, hi = int(support[0]), int(support[-1])
            if lo == 0 or hi == length - 1:
                raise ValueError(f"the receptive field is wider than the probe's margin of {margin} samples")
            before.append(margin + phase - lo)
            after.append(hi - margin - phase)
    return before, after


def measured_context(model: nn.Module, period: int, guess: int, dtype: torch.dtype = torch.float32) -> Tuple[int, int]:
    """:func:`ola_context` of :func:`phase_reach`, probing with margins ``guess``, ``2 guess``, ... until one suffices."""
    margin = max(int(guess), period)
    while True:
        try:
            before, after = phase_reach(model, period, margin, dtype=dtype)
        except ValueError:
            if margin > 1 << 22:
                raise
            margin *= 2
            continue
        return ola_context(before, after, period)


#: the smallest ``(left, right)`` contexts of an exact overlap-add whose buffers are multiples of ``period``,
#: from the per-phase reach that :func:`phase_reach` measures (the benchmark's rule, shared)
ola_context = context_from_reach
