"""Peak memory of each configuration, measured in a child process.

Why this way: ``tracemalloc`` does not see torch's allocations (they bypass Python's
allocator), and ``ru_maxrss`` only ever grows, so it can only tell the peak of a whole
process. On Linux the peak resident set size (``VmHWM``) can be reset by writing ``5`` to
``/proc/self/clear_refs``: for each configuration the child process builds a fresh state,
collects garbage, reads its resident size (``VmRSS``, the baseline: the weights and the
runtime are already resident), resets the peak, streams a few buffers and reads ``VmHWM``.
The figure reported is ``VmHWM - baseline``: the memory the configuration needs on top of
the loaded model (caches, activations, allocator slack).

glibc's ``malloc`` keeps freed blocks for reuse, which would hide a configuration's needs
behind the previous one's leftovers: the child runs with ``MALLOC_MMAP_THRESHOLD_`` fixed
at 64 KiB and ``MALLOC_TRIM_THRESHOLD_=0``, so that large blocks go back to the system
when freed. That setting costs page faults on every call, which is why no timing is taken
in that process. Where ``clear_refs`` cannot be written, each configuration gets a child
of its own and the peak is that child's ``ru_maxrss`` less the same baseline.
"""

from __future__ import annotations

import copy
import gc
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import torch

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0", "MALLOC_TOP_PAD_": "0"}


def _status() -> Dict[str, int]:
    values = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(("VmRSS", "VmHWM")):
                key, value = line.split(":", 1)
                values[key] = int(value.split()[0]) * 1024
    return values


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _state_bytes(module: object) -> int:
    if hasattr(module, "cache_bytes"):
        return int(module.cache_bytes)
    if isinstance(module, torch.nn.Module):
        return sum(b.numel() * b.element_size() for b in module.buffers())
    return 0


def measure_in_this_process(
    model_name: str, configs: List[Dict[str, object]], calls: int, dry_run: bool = True
) -> List[Dict[str, object]]:
    """Peak memory of each configuration (see the module docstring); run in a child process."""
    from harness.measure import noise_signal, prime_stream
    from harness.methods import CACHED_CONV, OVERLAP_ADD, STREAMIFY, Method, OverlapAddStream, prepare
    from harness.reference import CONFIGS

    torch.set_num_threads(1)
    prepared = prepare(CONFIGS[model_name])
    pristine_twin = prepared.cached_conv
    results: List[Dict[str, object]] = []
    resettable = True

    def fresh(method: str):
        """A fresh stream of ``method`` and the samples it needs to reach its steady state."""
        if method == STREAMIFY:
            prepared.stream.reset()
            return prepared.stream, int(prepared.stream.delay)
        if method == CACHED_CONV:
            return copy.deepcopy(pristine_twin), 0  # its caches (64 streams) are created at its first call
        if method == OVERLAP_ADD:
            ola = OverlapAddStream(prepared.folded, prepared.ola_left, prepared.ola_right, prepared.config.total_ratio)
            return ola, prepared.ola_left + prepared.ola_right
        return prepared.folded, 0  # offline, on one whole signal

    def measure(method: str, batch: int, length: int) -> Dict[str, object]:
        nonlocal resettable
        run, prime = fresh(method)
        repeats = 1 if method == "offline" else calls
        signal = noise_signal(batch, length * repeats, seed=3)
        chunks = [signal[..., i * length : (i + 1) * length].contiguous() for i in range(repeats)]
        del signal
        gc.collect()
        baseline = _status()["VmRSS"]
        with torch.inference_mode():
            # steady state first; the transient memory of those calls is freed before the peak is
            # reset, the state they leave stays resident and counts
            prime_stream(Method(method, "eager", run, lambda: None, 0, prime=prime), batch, length)
        gc.collect()
        resettable = _reset_peak() and resettable
        with torch.inference_mode():
            for chunk in chunks:
                out = run(chunk)
                del out
        peak = _status()["VmHWM"] if resettable else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        record = {
            "peak_bytes": max(peak - baseline, 0),
            "baseline_bytes": baseline,
            "state_bytes": _state_bytes(run),
            "method_of_peak": "VmHWM after clear_refs" if resettable else "ru_maxrss",
        }
        if method == STREAMIFY:
            prepared.stream.reset()
        del run, chunks
        gc.collect()
        return record

    for config in configs:
        method = str(config["method"])
        if method == CACHED_CONV and pristine_twin is None:
            continue
        batch = int(config["batch"])
        length = int(config["buffer"])
        # a dry run first: one-time allocations of the libraries for these shapes (oneDNN's primitive and
        # reordered-weight caches) are not charged to the configuration
        if dry_run:
            measure(method, batch, length)
        results.append({**config, **measure(method, batch, length)})
    return results


def _child_path(existing: Optional[str]) -> str:
    """``PYTHONPATH`` for the child: ``benchmarks/`` (for ``harness``) and the streamify this process runs."""
    import streamify

    folders = [str(Path(__file__).resolve().parents[1]), str(Path(streamify.__file__).resolve().parents[1])]
    return os.pathsep.join(folders + ([existing] if existing else []))


def measure_memory(
    model_name: str, configs: List[Dict[str, object]], calls: int = 6, timeout: float = 900.0, dry_run: bool = True
) -> Dict[str, object]:
    """Run :func:`measure_in_this_process` in a child process (malloc tuned, see the module docstring).

    ``dry_run``: measure each configuration once untimed first (slower, steadier figures).
    """
    request = json.dumps({"model": model_name, "configs": configs, "calls": calls, "dry_run": dry_run})
    env = dict(os.environ)
    env.update(MALLOC_ENV)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = _child_path(env.get("PYTHONPATH"))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "harness.memory", request],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"memory child timed out after {timeout:g} s", "results": []}
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed", "results": []}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    answer = json.loads(lines[-1]) if lines else {"error": "no output", "results": []}
    records = answer.get("results", [])
    if len(configs) > 1 and any(r.get("method_of_peak") == "ru_maxrss" for r in records):
        # the peak cannot be reset here: one child per configuration
        single = [measure_memory(model_name, [config], calls, timeout, dry_run) for config in configs]
        answer = {"results": [r for part in single for r in part.get("results", [])]}
    return answer


def main(argv: Optional[List[str]] = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    request = json.loads(args[0])
    results = measure_in_this_process(
        request["model"], request["configs"], int(request["calls"]), bool(request.get("dry_run", True))
    )
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
