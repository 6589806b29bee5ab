"""The cost of a buffer's path (docs/architecture.md, "The path of a buffer"): microseconds per call.

A small converted model (``Conv1d -> ReLU -> Conv1d(stride 2) -> ConvTranspose1d``, 4 channels) on buffers
``[1, 1, 64]``, where a call is nearly all path and little arithmetic, one intra-op thread: through
``AnyLengthStream`` eager and scripted, and through the method of its nn~ file (``export_nn_tilde``, loaded
with ``torch.jit.load``), as a host calls it. Medians over ``--blocks`` blocks of ``--calls`` calls.

    python benchmarks/buffer_path.py                          # this checkout: one JSON line
    python benchmarks/buffer_path.py --against OTHER/src      # alternate with another checkout's src/, in fresh
                                                              # processes (A, B, A, B...): medians per checkout
    python benchmarks/buffer_path.py --rave --against OTHER/src   # the benchmark's rave-v2-small instead, buffers
                                                              # [1, 1, 2048], called directly (eager, scripted)

Timings are of this machine at the time of the run: compare the rows of one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch
from torch import nn


def _per_call_us(call: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls * 1e6


def measure(blocks: int, calls: int) -> Dict[str, float]:
    """Median µs per call of each way in (this process's streamify)."""
    from streamify import convert, export_nn_tilde
    from streamify.buffering import AnyLengthStream  # the former name: both checkouts have it

    torch.set_num_threads(1)
    torch.manual_seed(0)
    plain = nn.Sequential(
        nn.Conv1d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv1d(4, 4, 4, stride=2, padding=1),
        nn.ConvTranspose1d(4, 1, 2, 2),
    ).eval()
    stream = convert(plain, torch.randn(1, 1, 256))
    x = torch.randn(1, 1, 64)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "path.ts"
        export_nn_tilde(stream, path, torch.randn(1, 1, 256))
        file = torch.jit.load(str(path))
    stream.reset()
    ways = {
        "eager AnyLengthStream": AnyLengthStream(stream),
        "scripted AnyLengthStream": torch.jit.script(AnyLengthStream(stream)),
        "nn~ file method": file.forward,
    }
    times: Dict[str, List[float]] = {name: [] for name in ways}
    with torch.inference_mode():
        for way in ways.values():
            _per_call_us(lambda way=way: way(x), 500)  # warm (TorchScript optimises at its first calls)
        for _ in range(blocks):
            for name, way in ways.items():
                times[name].append(_per_call_us(lambda way=way: way(x), calls))
    return {name: statistics.median(values) for name, values in times.items()}


def measure_rave(blocks: int, calls: int) -> Dict[str, float]:
    """Median µs per call of the benchmark's rave-v2-small (harness/reference.py), called directly at 2048."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from harness.reference import RAVE_V2_SMALL, build_reference
    from streamify import convert

    torch.set_num_threads(1)
    model = build_reference(RAVE_V2_SMALL, seed=0).eval()
    stream = convert(model, torch.randn(1, 1, 8192, generator=torch.Generator().manual_seed(0)), verify=False)
    x = torch.randn(1, 1, 2048)
    ways = {"eager stream": stream, "scripted stream": torch.jit.script(stream)}
    times: Dict[str, List[float]] = {name: [] for name in ways}
    with torch.inference_mode():
        for way in ways.values():
            _per_call_us(lambda way=way: way(x), 20)
        for _ in range(blocks):
            for name, way in ways.items():
                times[name].append(_per_call_us(lambda way=way: way(x), calls))
    return {name: statistics.median(values) for name, values in times.items()}


def alternate(other: str, rounds: int, blocks: int, calls: int, rave: bool) -> None:
    """Fresh processes, alternating this checkout's src/ and ``other``; the median of each way per checkout."""
    here = str(Path(__file__).resolve().parent.parent / "src")
    results: Dict[str, List[Dict[str, float]]] = {here: [], other: []}
    for _ in range(rounds):
        for src in (other, here):
            env = dict(os.environ, PYTHONPATH=src)
            command = [sys.executable, __file__, "--blocks", str(blocks), "--calls", str(calls)] + ["--rave"] * rave
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            results[src].append(json.loads(done.stdout.strip().splitlines()[-1]))
    for src, runs in results.items():
        medians = {name: statistics.median(run[name] for run in runs) for name in runs[0]}
        print(src + ": " + ", ".join(f"{name} {us:.1f} us" for name, us in medians.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=30, help="timed blocks per way")
    parser.add_argument("--calls", type=int, default=200, help="calls per block")
    parser.add_argument("--against", help="another checkout's src/ folder: alternate with it in fresh processes")
    parser.add_argument("--rounds", type=int, default=4, help="alternations with --against")
    parser.add_argument("--rave", action="store_true", help="the benchmark's rave-v2-small at 2048 samples instead")
    args = parser.parse_args()
    if args.against:
        alternate(args.against, args.rounds, args.blocks, args.calls, args.rave)
    else:
        print(json.dumps((measure_rave if args.rave else measure)(args.blocks, args.calls)))


if __name__ == "__main__":
    main()
