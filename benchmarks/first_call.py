"""First calls of an exported nn~ file in a fresh process, against the real-time budget.

A host (nn~) loads the file with ``torch::jit::load``, calls ``get_methods()`` and then calls
a method once per buffer on its own thread, under inference mode. TorchScript compiles a
function at its first calls; this script measures what the host sees: each run is a fresh
Python process that loads the file, optionally calls ``get_methods()`` as nn~ does (timed:
that is where a streamify file warms itself up), then times each of the first ``--calls``
calls of ``forward`` on another thread, one intra-op thread, random buffers.

    python benchmarks/first_call.py                           # rave-v2, 2048 samples at 48 kHz
    python benchmarks/first_call.py --model rave-v2-small --calls 16
    python benchmarks/first_call.py --file model.ts --compare old.ts --json results.json

The budget is the buffer's duration (2048 samples at 48 kHz: 42.7 ms). Timings are of this
machine at the time of the run: compare rows of one run only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

#: the child process: what a host does with a freshly loaded file
CHILD = r"""
import json, sys, threading, time, torch
path, host, buffer, calls, threads = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
began = time.perf_counter()
model = torch.jit.load(path)
load_s = time.perf_counter() - began
warm_s = None
if host:
    began = time.perf_counter()
    model.get_methods()
    warm_s = time.perf_counter() - began
times = []
def audio_thread():
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for _ in range(calls):
            x = torch.randn(1, 1, buffer, generator=generator) * 0.1
            began = time.perf_counter()
            model.forward(x)
            times.append(1000.0 * (time.perf_counter() - began))
thread = threading.Thread(target=audio_thread)
thread.start()
thread.join()
print(json.dumps({"load_s": load_s, "warm_s": warm_s, "calls_ms": times}))
"""


def export_reference(model: str, sample_rate: int, folder: Path) -> Path:
    """Export the reference model's ``forward`` (weight norms folded, as deployed) to an nn~ file."""
    import torch

    from harness.reference import CONFIGS, build_reference, folded_copy
    from streamify.export import export_nn_tilde

    torch.set_num_threads(1)
    config = CONFIGS[model]
    plain = folded_copy(build_reference(config)).eval()
    path = folder / f"{model}.ts"
    began = time.perf_counter()
    export_nn_tilde(plain, path, torch.randn(1, 1, 8 * config.total_ratio), sample_rate=sample_rate)
    print(f"exported {model} to {path} in {time.perf_counter() - began:.1f} s", flush=True)
    return path


def run_child(path: Path, host: bool, buffer: int, calls: int, threads: int) -> Dict[str, object]:
    """One fresh process: load, (get_methods), ``calls`` timed calls on another thread."""
    args = [sys.executable, "-c", CHILD, str(path), "1" if host else "0", str(buffer), str(calls), str(threads)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=1800, check=False)
    if result.returncode != 0:
        raise SystemExit(f"the child process failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def summarize(label: str, run: Dict[str, object], budget_ms: float) -> Dict[str, object]:
    calls: List[float] = list(run["calls_ms"])  # type: ignore[arg-type]
    steady = statistics.median(calls[len(calls) // 2 :])
    over = [i + 1 for i, t in enumerate(calls) if t > budget_ms]
    return {
        "label": label,
        "load_s": round(float(run["load_s"]), 2),
        "warm_up_s": None if run["warm_s"] is None else round(float(run["warm_s"]), 2),
        "first_calls_ms": [round(t, 1) for t in calls],
        "steady_median_ms": round(steady, 1),
        "calls_over_budget": over,
    }


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="rave-v2", help="reference model to export (rave-v2, rave-v2-small...)")
    parser.add_argument("--file", type=Path, help="an exported .ts file to measure instead of exporting one")
    parser.add_argument("--compare", type=Path, help="another .ts file (e.g. from an older version) to measure too")
    parser.add_argument("--buffer", type=int, default=2048, help="host buffer size, samples")
    parser.add_argument("--sample-rate", type=int, default=48000)
    parser.add_argument("--calls", type=int, default=12, help="calls timed per process")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)

    budget_ms = 1000.0 * args.buffer / args.sample_rate
    with tempfile.TemporaryDirectory() as folder:
        path = args.file or export_reference(args.model, args.sample_rate, Path(folder))
        rows = [
            summarize(
                "this file, host calls get_methods() at load (nn~)",
                run_child(path, True, args.buffer, args.calls, args.threads),
                budget_ms,
            ),
            summarize(
                "this file, no get_methods() call",
                run_child(path, False, args.buffer, args.calls, args.threads),
                budget_ms,
            ),
        ]
        if args.compare:
            run = run_child(args.compare, True, args.buffer, args.calls, args.threads)
            rows.append(summarize(f"{args.compare.name}, host calls get_methods() at load", run, budget_ms))
    print(
        f"\nbuffer {args.buffer} samples at {args.sample_rate} Hz: budget {budget_ms:.1f} ms per call; "
        f"{args.threads} thread(s)"
    )
    for row in rows:
        warm = "-" if row["warm_up_s"] is None else f"{row['warm_up_s']} s"
        print(f"- {row['label']}: load {row['load_s']} s, get_methods {warm}")
        print(f"  calls (ms): {row['first_calls_ms']}")
        print(f"  steady median {row['steady_median_ms']} ms; calls over budget: {row['calls_over_budget'] or 'none'}")
    if args.json:
        args.json.write_text(json.dumps({"budget_ms": budget_ms, "buffer": args.buffer, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
