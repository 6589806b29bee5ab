"""Time algebra of streaming: delays, rates and buffer multiples.

Conventions used across streamify:

* A *stream* of a signal is what a streaming module emits call after call,
  concatenated. Its *delay* ``D`` (in frames of that signal) means
  ``stream[n] == offline[n - D]``.
* A *ratio* is a :class:`fractions.Fraction`: input samples of the model per
  frame of the signal (``2`` after a stride-2 conv, ``1/2`` after a 2x upsampler).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Iterable, Tuple


def effective_kernel(kernel_size: int, dilation: int) -> int:
    """Span in input frames of one dilated kernel window."""
    return dilation * (kernel_size - 1) + 1


def strided_cache(span: int, stride: int, left_pad: int, input_delay: int) -> Tuple[int, int]:
    """Cache length and output delay of a windowed op (conv, pool) made streamable.

    A window op of span ``span`` and stride ``stride`` over a signal that was
    padded by ``left_pad`` frames offline, fed by a stream delayed by
    ``input_delay`` frames, keeps the last ``cache`` input frames between calls.
    The cache must hold at least ``span - stride`` frames so that every window of
    a call is complete, and its length fixes the decimation phase: the output
    stream then lags the offline output by ``(cache + input_delay - left_pad) / stride``
    output frames, which must be a whole number. The smallest such cache is chosen
    whose output delay is not negative: a negative delay (possible after a pad,
    ``input_delay < 0``) would drop the first offline output frames, which later
    layers need.

    Returns:
        ``(cache, output_delay)`` in input frames and output frames.
    """
    low = max(0, span - stride)
    cache = low + (left_pad - input_delay - low) % stride
    delay, remainder = divmod(cache + input_delay - left_pad, stride)
    assert remainder == 0
    if delay < 0:
        cache -= delay * stride
        delay = 0
    return cache, delay


def frames_multiple(ratio: Fraction, multiple: int) -> int:
    """Smallest model-input length unit that gives a layer at ``ratio`` a multiple of ``multiple`` frames.

    A layer whose input runs at ``ratio`` model samples per frame and accepts only
    lengths that are multiples of ``multiple`` frames constrains the model input
    length ``n`` to ``n / ratio`` in ``multiple * Z``; the smallest positive such
    ``n`` is the numerator of ``multiple * ratio``.
    """
    return (Fraction(multiple) * ratio).numerator


def lcm_all(values: Iterable[int]) -> int:
    """Least common multiple of positive integers (1 for none)."""
    result = 1
    for value in values:
        result = result * value // math.gcd(result, value)
    return result


def ceil_div(a: int, b: int) -> int:
    """Integer ceil(a / b) for b > 0."""
    return -((-a) // b)
