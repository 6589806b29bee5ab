"""Exactness of each streaming method on the reference model: streamed output against offline, shifted.

The bar is the package's: float32, max error relative to the offline output's peak <= 1e-5.
streamify and the overlap-add are compared from the very first sample (a fresh stream is
``delay`` zeros, then the offline output). cached_conv does not mask its warm-up (its first
outputs come from zero caches standing for signal before the start), so it is compared after
one receptive field; it is also compared from the first sample, to show how long its warm-up is.
cached_conv "as published" (RAVE v2's encoder passes no ``cumulative_delay`` to its strided convs)
is compared at the shift that fits best.
"""

from __future__ import annotations

from typing import Dict, List

import torch
from torch import Tensor

from harness.measure import noise_signal
from harness.methods import OverlapAddStream, Prepared
from harness.reference import build_cached_conv, load_same_weights, reset_cached_conv
from streamify.exactness import compare_streamed, stream_signal

REL_TOL = 1e-5


def _record(
    model: str, check: str, buffer: int, delay: int, comparison, warmup: int, note: str = ""
) -> Dict[str, object]:
    passed = comparison.compared_frames > 0 and comparison.max_rel_error <= REL_TOL
    return {
        "model": model,
        "check": check,
        "buffer": buffer,
        "delay": delay,
        "warmup": warmup,
        "max_abs_error": comparison.max_abs_error,
        "max_rel_error": comparison.max_rel_error,
        "compared": comparison.compared_frames,
        "passed": bool(passed),
        "note": note,
    }


def _best_shift(streamed: Tensor, offline: Tensor, around: int, radius: int, segment: int) -> int:
    """The shift in ``around +- radius`` at which ``streamed`` fits ``offline`` best, on one segment."""
    start = offline.size(-1) // 2
    target = offline[..., start : start + segment]
    best, best_error = around, float("inf")
    for shift in range(max(around - radius, -start), around + radius + 1):
        lo = start + shift
        if lo < 0 or lo + segment > streamed.size(-1):
            continue
        error = (streamed[..., lo : lo + segment] - target).abs().max().item()
        if error < best_error:
            best, best_error = shift, error
    return best


def exactness_checks(prepared: Prepared, quick: bool = False) -> List[Dict[str, object]]:
    """Each method's streamed output against the offline output (see the module docstring)."""
    period = prepared.config.total_ratio
    buffer = max(2048, period)
    delay = int(prepared.stream.delay)
    warm = prepared.ola_left + prepared.ola_right  # one receptive field: cached_conv's warm-up
    calls = (delay + warm + period * (8 if quick else 16)) // buffer + 2
    x = noise_signal(1, buffer * calls, seed=11)
    sizes = [buffer] * calls
    with torch.inference_mode():
        offline = prepared.folded(x)
        records = _streamify_records(prepared, x, sizes, offline)
        records.append(_least_delay_record(prepared, buffer))
        records.append(_overlap_add_record(prepared, x, offline, buffer * 4 if not quick and calls >= 8 else buffer))
        if prepared.cached_conv is not None:
            records += _cached_conv_records(prepared, x, sizes, offline)
    return records


def _streamify_records(prepared: Prepared, x: Tensor, sizes: List[int], offline: Tensor) -> List[Dict[str, object]]:
    """streamify eager (and one sample off either way, which must fail), TorchScript, frozen, ONNX Runtime."""
    name, buffer, delay = prepared.config.name, sizes[0], int(prepared.stream.delay)
    prepared.stream.reset()
    streamed = stream_signal(prepared.stream, x, sizes)
    prepared.stream.reset()
    records = [_record(name, "streamify (eager)", buffer, delay, compare_streamed(streamed, offline, delay), 0)]
    for shift in (delay - 1, delay + 1):
        off = compare_streamed(streamed, offline, shift)
        records.append(
            {
                **_record(name, f"streamify one sample off ({shift})", buffer, shift, off, 0),
                "passed": bool(off.max_rel_error > 1e3 * REL_TOL),
                "note": "must fail by far: the delay is exact",
            }
        )
    for key, label in (("streamify-script", "TorchScript"), ("streamify-frozen", "frozen TorchScript")):
        scripted = prepared.scripted.get(key)
        if scripted is not None:
            scripted.reset()
            same = stream_signal(scripted, x, sizes)
            scripted.reset()
            records.append(
                _record(name, f"streamify ({label})", buffer, delay, compare_streamed(same, offline, delay), 0)
            )
    path = prepared.scripted.get("onnx-path")
    if path is not None:
        from streamify.export import OnnxStream

        same = stream_signal(OnnxStream(str(path)), x, sizes)
        records.append(
            _record(name, "streamify (ONNX Runtime)", buffer, delay, compare_streamed(same, offline, delay), 0)
        )
    return records


def _least_delay_record(prepared: Prepared, buffer: int) -> Dict[str, object]:
    """streamify's delay against the least delay of any exact stream (the overlap-add's look-ahead)."""
    delay, minimal, period = int(prepared.stream.delay), prepared.ola_right, prepared.config.total_ratio
    return {
        "model": prepared.config.name,
        "check": "streamify delay is the least exact delay",
        "buffer": buffer,
        "delay": delay,
        "warmup": 0,
        "max_abs_error": None,
        "max_rel_error": None,
        "compared": 0,
        "passed": delay == minimal,
        "note": f"least delay of any exact stream of buffers that are multiples of {period}: {minimal} samples "
        "(the overlap-add's look-ahead, from the model's geometry)",
    }


def _overlap_add_record(prepared: Prepared, x: Tensor, offline: Tensor, buffer: int) -> Dict[str, object]:
    """The exact overlap-add of the offline model, from the first sample."""
    ola = OverlapAddStream(prepared.folded, prepared.ola_left, prepared.ola_right, prepared.config.total_ratio)
    calls = x.size(-1) // buffer
    x = x[..., : calls * buffer]
    streamed = stream_signal(ola, x, [buffer] * calls)
    return _record(
        prepared.config.name,
        "overlap-add (eager)",
        buffer,
        ola.delay,
        compare_streamed(streamed, offline[..., : x.size(-1)], ola.delay),
        0,
        f"context {prepared.ola_left} before, {prepared.ola_right} after",
    )


def _cached_conv_records(prepared: Prepared, x: Tensor, sizes: List[int], offline: Tensor) -> List[Dict[str, object]]:
    """The cached_conv twin after its warm-up and from the first sample, and cached_conv as published."""
    name, buffer, period = prepared.config.name, sizes[0], prepared.config.total_ratio
    warm = prepared.ola_left + prepared.ola_right
    twin = prepared.cached_conv
    cc_delay = int(twin.cumulative_delay)
    reset_cached_conv(twin)
    streamed = stream_signal(twin, x, sizes)
    reset_cached_conv(twin)
    records = [
        _record(
            name,
            "cached_conv, delays threaded (after warm-up)",
            buffer,
            cc_delay,
            compare_streamed(streamed, offline, cc_delay, warmup=warm),
            warm,
            f"its delay exceeds streamify's by {cc_delay - int(prepared.stream.delay)} samples",
        ),
        _record(
            name,
            "cached_conv, delays threaded (from the first sample)",
            buffer,
            cc_delay,
            compare_streamed(streamed, offline, cc_delay),
            0,
            "no warm-up masking: its first outputs come from zero caches",
        ),
    ]
    published = load_same_weights(build_cached_conv(prepared.config, thread_delay=False), prepared.folded)
    streamed = stream_signal(published, x, sizes)
    shift = _best_shift(streamed, offline, int(published.cumulative_delay), 2 * period, min(4 * period, 8192))
    records.append(
        _record(
            name,
            "cached_conv as published (strided convs without the incoming delay)",
            buffer,
            shift,
            compare_streamed(streamed, offline, shift, warmup=warm),
            warm,
            f"best shift {shift}; it reports {int(published.cumulative_delay)}",
        )
    )
    return records
