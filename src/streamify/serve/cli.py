"""The ``serve`` and ``send`` commands (registered on the ``streamify`` app by :func:`register`)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from streamify.host.cli import _fail

SERVE_MODEL_HELP = (
    "A factory 'package.module:factory' (with --weights), 'pretrained', 'demo' or a checkpoint of our models "
    "(PyTorch models; serve an exported file's source model)."
)


def _check_model(model: str, weights, sample_rate, buffer: int, recovery: str, snapshot_seconds: float) -> str:
    """Load the model here once (a refusal is one line before Ray starts); a description of it and its recovery."""
    from streamify.host.models import load_host_model
    from streamify.serve.session import fork, plan_recovery

    host_model = load_host_model(model, weights, sample_rate=sample_rate)
    fork(host_model)
    host_model.check_buffer(buffer)
    plan = plan_recovery(host_model, buffer, recovery, snapshot_seconds)
    how = (
        f"replay of {plan.history} buffer(s)"
        if plan.mode == "replay"
        else f"a state snapshot every {plan.snapshot_every} buffers"
    )
    return f"{host_model.describe()}; a lost replica's sessions resume by {how} at --buffer {buffer}"


def serve(
    model: Annotated[str, typer.Argument(help=SERVE_MODEL_HELP)],
    replicas: Annotated[int, typer.Option(min=1, help="Replicas of the model (Ray actors).")] = 1,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of Serve's HTTP/WebSocket proxy.")] = 8000,
    host: Annotated[str, typer.Option(help="Address the proxy listens on (0.0.0.0: every interface).")] = "127.0.0.1",
    address: Annotated[
        Optional[str], typer.Option(help="A Ray cluster to join (ray://... or HOST:PORT); default: a local Ray.")
    ] = None,
    buffer: Annotated[int, typer.Option(min=1, help="Samples per buffer of a session that names none.")] = 2048,
    weights: Annotated[Optional[str], typer.Option(help="State dict for a factory (torch.save; weights_only).")] = None,
    sample_rate: Annotated[
        Optional[int], typer.Option(min=1, help="The model's rate in Hz when the model does not record it.")
    ] = None,
    recovery: Annotated[
        str, typer.Option(help="How a lost replica's sessions resume: auto, replay (conv models) or snapshot.")
    ] = "auto",
    snapshot_seconds: Annotated[
        float, typer.Option(min=0.01, help="Snapshot recovery: seconds of audio between two state snapshots.")
    ] = 1.0,
    threads: Annotated[int, typer.Option(min=1, help="Intra-op threads of each replica's model.")] = 1,
    replica_cpus: Annotated[
        Optional[float], typer.Option(min=0.01, help="CPUs Ray reserves per replica (default: shared on a local Ray).")
    ] = None,
    max_sessions: Annotated[int, typer.Option(min=1, help="Sessions one replica takes at most.")] = 64,
    drain: Annotated[
        float, typer.Option(min=0.0, help="On Ctrl-C or SIGTERM: seconds running sessions may still run.")
    ] = 10.0,
    route: Annotated[str, typer.Option(help="URL path of the endpoint.")] = "/",
    name: Annotated[str, typer.Option(help="Ray Serve application name.")] = "streamify",
) -> None:
    """Serve a streaming model on Ray Serve: one WebSocket connection = one session = one exact stream.

    Starts a local Ray (all CPUs but one) unless --address names a cluster. A session whose replica dies continues on another one with exactly the output it would have had (docs/serve.md). Ctrl-C or SIGTERM drains: no new sessions, running ones get --drain seconds to end, then the rest are closed.
    """
    from streamify.serve.app import ServeConfig
    from streamify.serve.launch import start_server

    out = Console(highlight=False)
    if not route.startswith("/"):
        raise _fail(ValueError(f"streamify: --route {route!r} must start with /"))
    try:
        out.print(f"model: {_check_model(model, weights, sample_rate, buffer, recovery, snapshot_seconds)}")
        weights_path = str(Path(weights).resolve()) if weights else None
        model_spec = str(Path(model).resolve()) if Path(model).is_file() else model
        config = ServeConfig(model_spec, weights_path, sample_rate, buffer, recovery, snapshot_seconds, threads)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        server = start_server(
            config, replicas, port, host, address, route, name, replica_cpus, max_sessions, drain_s=drain
        )
    except Exception as error:  # a command line ends with one line, whatever broke
        raise _fail(error) from error
    where = f"Ray cluster {address}" if address else "a local Ray"
    out.print(f"serving at [bold]{server.url}[/bold] ({replicas} replica(s) on {where}); Ctrl-C stops", soft_wrap=True)
    stop.wait()
    out.print(f"stopping: no new sessions; running ones may go on for {drain:g} s")
    served, closed = server.stop()
    out.print(f"stopped: {served} session(s) served, {closed} closed at the drain deadline")


def send(
    source: Annotated[Path, typer.Argument(help="Input audio file (any format soundfile reads).")],
    destination: Annotated[Path, typer.Argument(help="Output audio file (.wav, .flac, .ogg, ...).")],
    url: Annotated[str, typer.Option(help="The server: ws://HOST:PORT (and its --route).")],
    buffer: Annotated[Optional[int], typer.Option(min=1, help="Samples per buffer (default: the server's).")] = None,
    realtime: Annotated[bool, typer.Option(help="Pace the buffers in real time and count late outputs.")] = False,
    compensate: Annotated[
        bool, typer.Option(help="Remove the model's delay: the output lines up with the input.")
    ] = False,
    session: Annotated[Optional[str], typer.Option(help="Session id (default: a random one).")] = None,
    subtype: Annotated[
        Optional[str], typer.Option(help="soundfile subtype of the output (default: FLOAT where the format has it).")
    ] = None,
    retry: Annotated[float, typer.Option(min=0.0, help="Seconds to find a replica again after a loss.")] = 30.0,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="A connection silent this long while outputs are due is taken as lost.")
    ] = 10.0,
) -> None:
    """Send an audio file to `streamify serve` as one session and write what comes back.

    The same output as `streamify process IN OUT --model MODEL --buffer N` (the file resampled to the model's rate with soxr when they differ). Reconnects and resumes exactly when a replica dies. Ends with the round-trip latency (p50/p99) and, with --realtime, the late buffers.
    """
    from streamify.host.files import check_destination, read_audio, write_audio
    from streamify.serve.client import ClientOptions, stream_array

    out = Console(highlight=False)
    try:
        chosen = check_destination(destination, subtype)
        audio, rate = read_audio(source)
        options = ClientOptions(buffer, realtime, compensate, session, timeout_s=timeout, retry_s=retry)
        output, report = stream_array(url, audio, rate, options)
        write_audio(destination, output, report.sample_rate, chosen)
    except Exception as error:  # a command line ends with one line, whatever broke
        raise _fail(error) from error
    out.print(report.table())
    out.print(f"[green]wrote[/green] {destination} ({output.shape[0]} channel(s), {report.sample_rate} Hz, {chosen})")


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``send`` to ``app``."""
    app.command(name="serve")(serve)
    app.command(name="send")(send)
