"""Timing loops, the machine's floor (memory bandwidth, matmul rate) and the machine's description."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import Tensor

from harness.methods import Method


@dataclass(frozen=True)
class Plan:
    """How long to time each configuration."""

    warmup_calls: int = 5
    min_calls: int = 20
    min_seconds: float = 2.0
    max_calls: int = 400
    offline_reps: int = 3
    probe_reps: int = 5


QUICK_PLAN = Plan(warmup_calls=3, min_calls=6, min_seconds=0.25, max_calls=40, offline_reps=1, probe_reps=3)
FULL_PLAN = Plan()


def percentile(values: List[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, linearly interpolated."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class Timing:
    """Seconds per call of a configuration."""

    times: List[float]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def p90(self) -> float:
        return percentile(self.times, 0.9)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.times)

    @property
    def calls(self) -> int:
        return len(self.times)


def noise_signal(batch: int, length: int, seed: int = 0) -> Tensor:
    """A seeded noise signal ``[batch, 1, length]`` (peak around 1)."""
    generator = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(batch, 1, length, generator=generator)


def time_stream(
    method: Method, batch: int, buffer: int, plan: Plan, tick: Optional[Callable[[], None]] = None
) -> Timing:
    """Stream buffers of ``buffer`` samples through ``method`` from a fresh stream; seconds per timed call.

    The stream is first primed to its steady state (``method.prime`` samples: warm-up counters
    run out, the overlap-add's window is full); then ``plan.warmup_calls`` calls (TorchScript's profiling runs) are not timed. Calls
    are timed one by one until both ``min_calls`` and ``min_seconds`` are reached (at most
    ``max_calls``).
    """
    cycle = 16
    signal = noise_signal(batch, buffer * cycle, seed=buffer + batch)
    chunks = [signal[..., i * buffer : (i + 1) * buffer].contiguous() for i in range(cycle)]
    times: List[float] = []
    method.reset()
    with torch.inference_mode():
        prime_stream(method, batch, buffer)
        for i in range(plan.warmup_calls):
            method(chunks[i % cycle])
        total = 0.0
        i = 0
        while i < plan.max_calls and (i < plan.min_calls or total < plan.min_seconds):
            x = chunks[i % cycle]
            began = time.perf_counter()
            method(x)
            elapsed = time.perf_counter() - began
            times.append(elapsed)
            total += elapsed
            i += 1
            if tick is not None:
                tick()
    method.reset()
    return Timing(times)


def prime_stream(method: Method, batch: int, buffer: int) -> None:
    """Stream ``method.prime`` samples in buffers of ``buffer`` so that the next calls are in steady state.

    Buffer-sized calls, not one long one: a long call would take other kernels (oneDNN's, which
    cache reordered weights) and leave the allocator in another state than the stream's own calls.
    """
    for i in range(-(-method.prime // buffer)):
        method(noise_signal(batch, buffer, seed=5 + i))


def time_offline(model: Callable[[Tensor], Tensor], batch: int, length: int, reps: int) -> Timing:
    """Seconds per call of ``model`` on a whole signal ``[batch, 1, length]`` (one untimed warm-up call)."""
    x = noise_signal(batch, length)
    times = []
    with torch.inference_mode():
        model(x[..., : min(length, 1 << 14)])
        for _ in range(reps):
            began = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - began)
    return Timing(times)


# ---------------------------------------------------------------------------------------------- machine floor


def _best(fn: Callable[[], object], reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return best


def measure_bandwidth(nbytes: int, reps: int = 5) -> Dict[str, float]:
    """Read bandwidth (bytes/s) over a working set of ``nbytes``, at the current thread count.

    Four read-only probes, each reading every byte once: ``sum``, ``dot`` and two vector-matrix
    products (``x @ W`` and ``W @ x``: the access pattern of a conv over one frame). ``best`` is
    the fastest. Every probe re-reads the same buffer, part of which can stay in a large last-level
    cache: an upper bound, above what a call reading its distinct weights in turn sees
    (:func:`measure_sequence_bandwidth`).
    """
    n = max(nbytes // 4, 1 << 16)
    cols = 4096
    rows = max(n // cols, 1)
    matrix = torch.full((rows, cols), 0.5)
    flat = matrix.view(-1)
    row = torch.ones(1, rows)
    column = torch.ones(cols, 1)
    size = matrix.numel() * 4
    rates = {
        "sum": size / _best(lambda: flat.sum(), reps),
        "dot": size / _best(lambda: torch.dot(flat, flat), reps),
        "vecmat": size / _best(lambda: torch.mm(row, matrix), reps),
        "matvec": size / _best(lambda: torch.mm(matrix, column), reps),
    }
    rates["best"] = max(rates.values())
    return rates


def measure_sequence_bandwidth(sizes_in_bytes: Sequence[int], reps: int = 5) -> Dict[str, float]:
    """Read bandwidth (bytes/s) of passes over distinct buffers, read one after the other as a call reads its weights.

    ``sizes_in_bytes``: bytes of each weight tensor, in the order a call reads them (the model's own
    sizes, e.g. :func:`harness.reference.weight_tensor_bytes`). One distinct float32 tensor of
    ``size // 4`` elements is allocated per entry. A pass reads every tensor once, in order, with
    ``torch.dot(t, t)`` on its flat view (a read-only reduction; over RAVE v2's sequence it was as fast
    as ``sum`` on the small tensors and faster than ``sum`` and matrix-vector products overall). One
    untimed warm-up pass, then ``reps`` timed passes.

    Why not :func:`measure_bandwidth`: re-reading one buffer leaves part of it in a large last-level
    cache between reads; a streaming call reads ~60 distinct tensors in turn, which a pass over distinct
    tensors of the model's sizes reproduces (on a 480 MiB-L3 machine: ~15 GB/s against ~23 GB/s for a
    120 MiB buffer re-read).

    Returns ``{"median": B/s of the median pass, "best": B/s of the fastest pass, "bytes": bytes per
    pass, "tensors": tensors per pass, "median_seconds": seconds of the median pass}``.
    """
    if not sizes_in_bytes:
        raise ValueError("no weight sizes to read")
    tensors = [torch.full((max(int(size) // 4, 1),), 0.5) for size in sizes_in_bytes]
    nbytes = sum(t.numel() * t.element_size() for t in tensors)

    def read_all() -> None:
        for t in tensors:
            torch.dot(t, t)

    read_all()
    times = []
    for _ in range(max(reps, 1)):
        began = time.perf_counter()
        read_all()
        times.append(time.perf_counter() - began)
    median = statistics.median(times)
    return {
        "median": nbytes / median,
        "best": nbytes / min(times),
        "bytes": float(nbytes),
        "tensors": float(len(tensors)),
        "median_seconds": median,
    }


def measure_matmul_rate(reps: int = 5, sizes: tuple = (1024, 2048)) -> Dict[str, float]:
    """Peak multiply-accumulates per second of a square float32 matmul, at the current thread count."""
    rates = {}
    for n in sizes:
        a = torch.randn(n, n)
        b = torch.randn(n, n)
        torch.mm(a, b)
        rates[f"mm{n}"] = n**3 / _best(lambda a=a, b=b: torch.mm(a, b), reps)
    rates["best"] = max(rates.values())
    return rates


def machine_floor(
    weight_sizes: Sequence[int], threads: List[int], reps: int, quick: bool = False
) -> Dict[str, Dict[str, float]]:
    """Measured bandwidths and matmul rate per thread count, for a model with weights of ``weight_sizes`` bytes.

    ``weight_sizes``: bytes per weight tensor in call order (:func:`harness.reference.weight_tensor_bytes`).
    Per thread count: ``"bandwidth"``: the bandwidth the floor uses, the fastest pass of
    :func:`measure_sequence_bandwidth` over the model's weight sizes (also ``"bandwidth_sequence"``;
    ``"bandwidth_sequence_median"``: its median pass). The fastest, as for the other probes: a floor is
    what a call cannot beat, and the fastest pass is the one least disturbed by other load (with 2
    threads on a busy 2-core machine, most passes wait for a descheduled thread at every tensor).
    ``"bandwidth_reread"``: the fastest probe of
    :func:`measure_bandwidth` re-reading one buffer of the weights' total (``"bandwidth_sum"``, ... per probe);
    ``"macs"``: the matmul peak (MAC/s). Results written before the sequence probe have ``"bandwidth"``
    = the re-read figure and no ``"bandwidth_sequence"`` (:mod:`harness.report` reads both).
    """
    total = sum(int(size) for size in weight_sizes)
    before = torch.get_num_threads()
    floor: Dict[str, Dict[str, float]] = {}
    try:
        for count in threads:
            torch.set_num_threads(count)
            bandwidth = measure_bandwidth(total, reps)
            # a pass takes milliseconds: more passes than the other probes' reps
            sequence = measure_sequence_bandwidth(weight_sizes, max(3 * reps, 9))
            rate = measure_matmul_rate(reps, (1024,) if quick else (1024, 2048))
            floor[str(count)] = {
                "bandwidth": sequence["best"],
                "macs": rate["best"],
                "bandwidth_sequence": sequence["best"],
                "bandwidth_sequence_median": sequence["median"],
                "bandwidth_reread": bandwidth["best"],
                **{f"bandwidth_{k}": v for k, v in bandwidth.items() if k != "best"},
                **{f"macs_{k}": v for k, v in rate.items() if k != "best"},
            }
    finally:
        torch.set_num_threads(before)
    return floor


def floor_seconds(weight_bytes: int, macs: float, floor: Dict[str, float]) -> float:
    """The time a call cannot beat: reading the weights once, or doing its multiply-accumulates at peak rate.

    ``floor["bandwidth"]`` is the weights-in-sequence bandwidth (the re-read one in older results).
    """
    return max(weight_bytes / floor["bandwidth"], macs / floor["macs"])


# ---------------------------------------------------------------------------------------------- machine


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> List[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def machine_info() -> Dict[str, object]:
    """What the figures were measured on, and when."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads_default": torch.get_num_threads(),
        "load_average_start": load_average(),
    }
