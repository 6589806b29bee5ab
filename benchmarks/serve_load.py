"""Load test of ``streamify serve``: how many real-time sessions a local Ray serves (docs/serve.md, "Load test").

Starts the model on a local Ray (``--replicas``), then for each session count K runs K sessions paced in real
time at once (one client process, one asyncio loop, starts spread over a buffer period) and reports the
pooled round trips (p50, p99), the late buffers, and the CPU the replicas, Serve's proxy and the clients
used (from /proc: Linux only). The counts are run upwards then downwards (two figures per K, alternated, as
the machine may be shared). The model's own compute per buffer is timed here before and after.

    python benchmarks/serve_load.py pretrained --buffer 2048 --sessions 1,4,8,16
    python benchmarks/serve_load.py serve_load:rave_v2 --buffer 2048 --sessions 1,2,3,4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TICK = os.sysconf("SC_CLK_TCK")


def rave_v2():
    """The RAVE v2 preset (31.5 M parameters, 48 kHz, ratio 2048) with random weights, noise off."""
    import torch

    from streamify.models import rave

    torch.manual_seed(0)
    model = rave("v2")
    model.use_noise = False
    return model.eval()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_busy() -> tuple:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def model_compute_ms(spec: str, buffer: int, calls: int = 40) -> float:
    """Median milliseconds of one buffer through the model here (1 thread), after 5 warm-up calls."""
    import torch

    from streamify.host import load_host_model

    torch.set_num_threads(1)
    model = load_host_model(spec)
    x = np.random.default_rng(0).standard_normal((1, 1, buffer)).astype(np.float32) * 0.3
    for _ in range(5):
        model(x)
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - began)
    return 1000 * float(np.median(times))


def serving_overhead(url: str, spec: str, rate: int, buffer: int, rounds: int = 5, calls: int = 30) -> dict:
    """The model's compute per buffer here and a served round trip with one buffer in flight (no queue),
    alternated ``rounds`` times; medians in ms. Their difference is what serving adds to a buffer."""
    import torch

    from streamify.host import load_host_model
    from streamify.serve.client import ClientOptions, _Client

    torch.set_num_threads(1)
    model = load_host_model(spec)
    x = (0.3 * np.random.default_rng(1).standard_normal((1, 1, buffer * calls))).astype(np.float32)
    compute, trips = [], []
    for _ in range(rounds):
        model.reset()
        for i in range(calls):
            began = time.perf_counter()
            model(x[..., i * buffer : (i + 1) * buffer])
            compute.append(time.perf_counter() - began)
        client = _Client(url, x[0], rate, ClientOptions(buffer=buffer, window=1))
        asyncio.run(client.run())
        trips.extend(client.report.round_trips[5:])  # after the first calls of the session
    return {
        "compute_ms": round(1000 * float(np.median(compute)), 2),
        "round_trip_ms": round(1000 * float(np.median(trips)), 2),
    }


async def sessions(url: str, count: int, seconds: float, rate: int, buffer: int):
    from streamify.serve.client import ClientOptions, _Client

    rng = np.random.default_rng(count)
    clients = []
    for _ in range(count):
        audio = (0.3 * rng.standard_normal((1, int(seconds * rate)))).astype(np.float32)
        clients.append(_Client(url, audio, rate, ClientOptions(buffer=buffer, realtime=True)))

    async def run(client, delay):
        await asyncio.sleep(delay)
        await client.run()

    period = buffer / rate
    await asyncio.gather(*(run(c, i * period / count) for i, c in enumerate(clients)))
    return clients


def measure(url: str, count: int, seconds: float, rate: int, buffer: int, pids: list, proxy: list) -> dict:
    before = [cpu_seconds(pid) for pid in pids]
    proxy_before = [cpu_seconds(pid) for pid in proxy]
    own_before = time.process_time()
    busy_before = machine_busy()
    began = time.monotonic()
    clients = asyncio.run(sessions(url, count, seconds, rate, buffer))
    wall = time.monotonic() - began
    busy_after = machine_busy()
    trips = np.concatenate([c.report.round_trips for c in clients]) * 1000
    late = 0
    for c in clients:
        due = c.t0 + (np.arange(c.total) + 2) * c.report.period
        late += int(np.sum(c.report.received > due))
    used = [cpu_seconds(pid) - b for pid, b in zip(pids, before)]
    proxy_used = [cpu_seconds(pid) - b for pid, b in zip(proxy, proxy_before)]
    return {
        "sessions": count,
        "buffers": int(trips.size),
        "p50_ms": round(float(np.percentile(trips, 50)), 2),
        "p99_ms": round(float(np.percentile(trips, 99)), 2),
        "max_ms": round(float(np.max(trips)), 2),
        "late": late,
        "late_pct": round(100 * late / trips.size, 2),
        "replicas_cpu_pct": round(100 * sum(used) / wall, 1),
        "proxy_cpu_pct": round(100 * sum(proxy_used) / wall, 1),
        "client_cpu_pct": round(100 * (time.process_time() - own_before) / wall, 1),
        "machine_busy_pct": round(
            100 * (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1]) * (os.cpu_count() or 1), 1
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--buffer", type=int, default=2048)
    parser.add_argument("--sessions", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--port", type=int, default=18800)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)

    from ray._private import state

    from streamify.host import load_host_model
    from streamify.serve.app import ServeConfig, replica_processes
    from streamify.serve.launch import start_server

    rate = load_host_model(args.model).sample_rate or 48000
    compute_before = model_compute_ms(args.model, args.buffer)
    server = start_server(ServeConfig(args.model, buffer=args.buffer), args.replicas, args.port, app="load")
    pids = list(replica_processes("load").values())
    proxy = [int(a["Pid"]) for a in state.actors().values() if a.get("ActorClassName") == "ProxyActor"]
    counts = [int(c) for c in args.sessions.split(",")]
    results = []
    try:
        measure(server.url, 1, 1.0, rate, args.buffer, pids, proxy)  # warm-up: first calls, connections
        overhead = serving_overhead(server.url, args.model, rate, args.buffer)
        print(json.dumps(overhead), flush=True)
        for count in counts + counts[::-1]:
            row = measure(server.url, count, args.seconds, rate, args.buffer, pids, proxy)
            results.append(row)
            print(json.dumps(row), flush=True)
    finally:
        server.stop(0.0)
    compute_after = model_compute_ms(args.model, args.buffer)
    summary = {
        "model": args.model,
        "buffer": args.buffer,
        "sample_rate": rate,
        "period_ms": round(1000 * args.buffer / rate, 2),
        "replicas": args.replicas,
        "compute_ms_before_after": [round(compute_before, 2), round(compute_after, 2)],
        "overhead": overhead,
        "load_average_at_end": os.getloadavg(),
        "runs": results,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
