"""The thread guard of a stream: what it costs per call, and what it catches.

1. Cost (one intra-op thread): ``Conv1d(1, 1, 3)`` on buffers ``[1, 1, 64]`` float32 (little but overhead),
   the root's ``forward`` with the guard against the same class with the forward of before (no
   guard), alternated in one process, eager and TorchScript; the median of the paired differences.
2. Races: two threads stream buffers through one converted model at once, each offering a refused
   buffer again until it runs. Every call either is refused (``StreamingError``) or runs alone: the
   calls that ran, replayed one after another on a fresh copy in the order they finished, must give
   the same outputs (counted: mismatches; the issue measured 165-190 of 400 without the guard).

    python benchmarks/thread_guard.py                 # both, about a minute
    python benchmarks/thread_guard.py --pairs 400     # more alternations on a loaded machine
    python benchmarks/thread_guard.py --unguarded     # the race with the guard switched off

Timings are of this machine at the time of the run (compare the rows of one run only).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import threading
import time
from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn

from streamify import StreamingError, StreamingModule, convert
from streamify.layers import Conv1d


class UnguardedConv1d(Conv1d):
    """``Conv1d`` with the root ``forward`` of before the guard."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.streaming:
            return self.offline(x)
        if self.is_root:
            self._validate(x)
        self._begin(x)
        y = self.stream(x)
        if self.is_root and self.delay > 0:
            y = self._mask_output(y)
        return y


def _per_call_us(model: nn.Module, x: Tensor, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        model(x)
    return (time.perf_counter() - start) / calls * 1e6


def guard_cost(pairs: int, calls: int) -> Dict[str, Tuple[float, float, float]]:
    """Per backend: median µs per call without and with the guard, and the median paired difference."""
    x = torch.randn(1, 1, 64)
    results = {}
    for label, wrap in (("eager", lambda m: m), ("TorchScript", torch.jit.script)):
        torch.manual_seed(0)
        guarded = wrap(Conv1d(1, 1, 3, padding=1).eval())
        torch.manual_seed(0)
        plain = wrap(UnguardedConv1d(1, 1, 3, padding=1).eval())
        before: List[float] = []
        after: List[float] = []
        with torch.inference_mode():
            for model in (plain, guarded):
                _per_call_us(model, x, 2000)  # warm (TorchScript optimises at its first calls)
            for _ in range(pairs):
                before.append(_per_call_us(plain, x, calls))
                after.append(_per_call_us(guarded, x, calls))
        difference = statistics.median(b - a for a, b in zip(before, after))
        results[label] = (statistics.median(before), statistics.median(after), difference)
    return results


def race(buffers: int, seed: int = 0) -> Tuple[int, int, int]:
    """Two threads, ``buffers`` buffers each, on one stream: (calls that ran, refusals, outputs unlike a serial stream)."""
    torch.manual_seed(seed)
    plain = nn.Sequential(nn.Conv1d(1, 8, 5, padding=2), nn.ReLU(), nn.Conv1d(8, 1, 5, padding=2))
    model = convert(plain, torch.randn(1, 1, 256))
    fresh = copy.deepcopy(model)
    finished: List[Tuple[Tensor, Tensor]] = []
    refused = [0]
    lock = threading.Lock()

    def worker(offset: int) -> None:
        generator = torch.Generator().manual_seed(seed + offset)
        for _ in range(buffers):
            x = torch.randn(1, 1, 256, generator=generator)
            while True:  # a refused buffer is offered again until it runs
                try:
                    with torch.no_grad():
                        y = model(x)
                    break
                except StreamingError:
                    with lock:
                        refused[0] += 1
                    time.sleep(0)
            with lock:  # calls that ran alone finish in the order they started
                finished.append((x, y))

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    mismatches = 0
    with torch.no_grad():
        for x, y in finished:
            mismatches += int(not torch.equal(fresh(x), y))
    return len(finished), refused[0], mismatches


def _no_guard(self: StreamingModule, busy: bool) -> None:
    """``StreamingModule._set_busy`` switched off (``--unguarded``)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=200, help="alternations of the cost measurement")
    parser.add_argument("--calls", type=int, default=200, help="calls per timed block")
    parser.add_argument("--buffers", type=int, default=200, help="calls per thread in the race")
    parser.add_argument("--races", type=int, default=5)
    parser.add_argument("--unguarded", action="store_true", help="race with the guard switched off (what it prevents)")
    args = parser.parse_args()
    threads = torch.get_num_threads()
    if args.unguarded:  # the race only, with the guard a no-op
        StreamingModule._set_busy = _no_guard  # type: ignore[method-assign]
    else:
        torch.set_num_threads(1)
        for label, (before, after, difference) in guard_cost(args.pairs, args.calls).items():
            print(
                f"{label}: {before:.2f} us per call without the guard, {after:.2f} with; difference {difference:+.2f} us"
            )
    torch.set_num_threads(threads)  # the race with torch's own intra-op threads (their waits let calls overlap)
    print(f"race: {threads} intra-op threads")
    for run in range(args.races):
        accepted, refused, mismatches = race(args.buffers, seed=run)
        print(f"race {run}: {accepted} calls ran, {refused} refused, {mismatches} outputs unlike a serial stream")


if __name__ == "__main__":
    main()
