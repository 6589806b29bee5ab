"""Sessions served on a local Ray (one cluster for this module): equal to `process`, concurrent in real time,
exact through a replica killed mid-stream, drained on shutdown.

Timings are printed (`-s`), never asserted: the machine is shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from streamify.host import load_host_model, process_array

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"

if os.environ.get("CI"):
    import ray  # CI installs the serve extra: these tests must run there
else:
    ray = pytest.importorskip("ray", reason="ray[serve] is not installed (pip install -e '.[serve]')")

from ray import serve  # noqa: E402

from streamify.serve.app import ServeConfig, replica_processes  # noqa: E402
from streamify.serve.client import ClientOptions, _Client, stream_array  # noqa: E402
from streamify.serve.launch import start_server  # noqa: E402

CONV = "serve_models:strided_codec"
RECURRENT = "serve_models:recurrent_net"
RATE = 16000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """A local Ray of one CPU (the other core stays free) and Serve's proxy; yields its port."""
    port = free_port()
    path = os.pathsep.join([str(SRC), str(HERE), os.environ.get("PYTHONPATH", "")])
    ray.init(
        num_cpus=1,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="WARNING",
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        yield port
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def servers(cluster):
    """Two applications of two replicas each: a conv model (replay recovery) and a recurrent one (a snapshot
    every 4 buffers of 256)."""
    port = cluster
    return {
        "conv": start_server(
            ServeConfig(CONV, buffer=256), 2, port, route="/conv", app="conv", replica_cpus=0.2, drain_s=1
        ),
        "rnn": start_server(
            ServeConfig(RECURRENT, buffer=256, snapshot_seconds=4 * 256 / RATE, sample_rate=RATE),
            2,
            port,
            route="/rnn",
            app="rnn",
            replica_cpus=0.2,
            drain_s=1,
        ),
    }


def signal_of(channels: int, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    tone = 0.5 * np.sin(2 * np.pi * 180 * (1 + np.arange(channels))[:, None] * t)
    return (tone + 0.1 * rng.standard_normal((channels, t.size))).astype(np.float32)


MODELS = {}


def expected(spec: str, audio: np.ndarray, buffer: int) -> np.ndarray:
    if spec not in MODELS:
        MODELS[spec] = load_host_model(spec, sample_rate=RATE if spec == RECURRENT else None)
    return process_array(MODELS[spec], audio, buffer)[0]


@pytest.mark.parametrize(
    "app,spec,channels,buffer", [("conv", CONV, 1, 256), ("conv", CONV, 2, 200), ("rnn", RECURRENT, 1, 256)]
)
def test_session_equals_process(servers, app, spec, channels, buffer):
    audio = signal_of(channels, 1.0, seed=buffer)
    output, report = stream_array(servers[app].url, audio, RATE, ClientOptions(buffer=buffer))
    np.testing.assert_array_equal(output, expected(spec, audio, buffer))
    assert report.reconnections == 0 and len(report.replicas) == 1
    print(f"\n{app} {channels} ch / {buffer}:\n{report.text()}")


def test_six_realtime_sessions(servers):
    audio = [signal_of(1, 1.5, seed=i) for i in range(6)]
    results = [None] * 6

    def run(i):
        results[i] = stream_array(servers["conv"].url, audio[i], RATE, ClientOptions(buffer=512, realtime=True))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for i, result in enumerate(results):
        assert result is not None, f"session {i} did not finish"
        output, report = result
        np.testing.assert_array_equal(output, expected(CONV, audio[i], 512))
        print(
            f"\nsession {i} on {report.replicas}: round trip p50 {1000 * report.percentile(50):.1f} ms, "
            f"p99 {1000 * report.percentile(99):.1f} ms, late {report.late} of {len(report.sent)}"
        )


def run_clients(url: str, signals, options: ClientOptions):
    """Start one client per signal on a thread each; returns the clients, their threads and results."""
    clients = [_Client(url, audio, RATE, options) for audio in signals]
    errors = {}

    def run(i):
        try:
            asyncio.run(clients[i].run())
        except Exception as error:  # reported by the test
            errors[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    return clients, threads, errors


@pytest.mark.parametrize("app,spec", [("conv", CONV), ("rnn", RECURRENT)])
def test_replica_killed_mid_stream(servers, app, spec):
    """SIGKILL the process of the replica that serves session 0, mid-stream: every session still exact,
    session 0 resumed on another replica, nothing duplicated or missing."""
    signals = [signal_of(1, 2.0, seed=10 + i) for i in range(4)]
    clients, threads, errors = run_clients(servers[app].url, signals, ClientOptions(buffer=256, realtime=True))
    began = time.monotonic()
    while time.monotonic() - began < 30:
        if clients[0].report is not None and clients[0].next_out >= 20:
            break
        time.sleep(0.02)
    victim = clients[0].report.replicas[0]
    pids = replica_processes(app)
    assert victim in pids, f"replica {victim} not among the live replicas {pids}"
    at = clients[0].next_out
    os.kill(pids[victim], signal.SIGKILL)
    for thread in threads:
        thread.join(90)
    assert not errors, errors
    for client, audio in zip(clients, signals):
        np.testing.assert_array_equal(client.result(), expected(spec, audio, 256))
    first = clients[0].report
    assert first.reconnections >= 1 and first.replicas[-1] != victim
    assert at < len(first.sent)  # it was mid-stream
    for client in clients:
        if client.report.replicas[0] != victim:
            assert client.report.reconnections == 0  # the others stayed on their replica
    print(
        f"\n{app}: killed {victim} (pid {pids[victim]}) at buffer {at} of {len(first.sent)}; session 0: "
        f"{first.replicas}, {first.resent} buffers sent again, "
        f"worst round trip {1000 * np.max(first.round_trips):.0f} ms"
    )


def refused_while_draining(url: str, within_s: float = 10.0):
    """The first reply to a new session once the server drains, and its close code (new sessions are taken
    until the replica learns of the drain: those are ended at once)."""
    from websockets.sync.client import connect

    from streamify.serve import protocol as p
    from streamify.serve.client import endpoint

    began = time.monotonic()
    while True:
        with connect(endpoint(url)) as ws:
            ws.send(p.Start("probe", 256, 1).to_text())  # the server reads it before it refuses
            reply = p.parse_message(ws.recv(timeout=10))
            if reply["type"] != "ready" or time.monotonic() - began > within_s:
                with contextlib.suppress(Exception):  # the close that follows the error
                    ws.recv(timeout=5)
                return reply, ws.close_code
            ws.send(p.message("end", buffers=0))
        time.sleep(0.1)


def test_graceful_shutdown(cluster):
    """`streamify serve` on a running cluster, stopped by SIGINT while two sessions run: the short one ends
    exactly within the drain, the long one is closed with a reason, new sessions are refused, exit status 0."""
    port = cluster
    address = ray.get_runtime_context().gcs_address
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(HERE)])}
    command = [sys.executable, "-m", "streamify", "serve", CONV, "--address", address, "--port", str(port)]
    command += ["--route", "/g", "--name", "g", "--buffer", "256", "--drain", "3", "--replica-cpus", "0.1"]
    server = subprocess.Popen(command, cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        began = time.monotonic()
        for line in server.stdout:
            lines.append(line)
            if "serving at" in line or time.monotonic() - began > 120:
                break
        assert any("serving at" in line for line in lines), "".join(lines)
        url = f"ws://127.0.0.1:{port}/g"
        short, long = signal_of(1, 1.2, seed=1), signal_of(1, 10.0, seed=2)
        options = ClientOptions(buffer=256, realtime=True, retry_s=0.5)
        clients, threads, errors = run_clients(url, [short, long], options)
        began = time.monotonic()
        while any(client.report is None for client in clients) and time.monotonic() - began < 60:
            time.sleep(0.02)
        assert not errors and all(client.report is not None for client in clients), errors
        time.sleep(0.3)
        server.send_signal(signal.SIGINT)
        refusal = refused_while_draining(url)
        assert refusal[0]["type"] == "error" and refusal[0]["retry"] is True, refusal
        assert "shutting down" in refusal[0]["message"] and refusal[1] == 1013, refusal
        for thread in threads:
            thread.join(30)
        rest, _ = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    output = "".join(lines) + rest
    assert server.returncode == 0, output
    np.testing.assert_array_equal(clients[0].result(), expected(CONV, short, 256))
    assert 1 in errors and "the server shuts down" in str(errors[1]), errors
    said = re.search(r"stopped: (\d+) session\(s\) served, (\d+) closed at the drain deadline", output)
    # the probes the replica took before it learned of the drain count as sessions served too
    assert said and int(said.group(1)) >= 2 and int(said.group(2)) == 1, output
