"""Start, run and stop a served model: a local Ray (or a cluster's), Serve's HTTP proxy, the application.

:func:`start_server` is what ``streamify serve`` runs before it waits for Ctrl-C, and :meth:`Server.stop`
what it runs after (the graceful drain). Tests run both on a local Ray they started themselves.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass
from typing import Optional

import ray
from ray import serve

from streamify.serve.app import CONTROL_NAMESPACE, Control, ServeConfig, application

#: seconds ``stop`` waits for Ray Serve to delete the application after the drain
DELETE_TIMEOUT_S = 60.0


def local_cpus() -> int:
    """The CPUs a local Ray is given: all but one, leaving a core to the proxy, the clients and the system."""
    return max(1, (os.cpu_count() or 2) - 1)


def connect_ray(address: Optional[str], cpus: Optional[float] = None) -> bool:
    """Join the Ray cluster at ``address``, or start a local one (``cpus``, default :func:`local_cpus`).

    Returns True when this call started a local Ray (stop it with ``ray.shutdown``). Replicas of a local
    Ray import the model's factory from the current directory (it is put on their ``PYTHONPATH``).
    """
    if ray.is_initialized():
        return False
    path = os.pathsep.join(part for part in (os.getcwd(), os.environ.get("PYTHONPATH", "")) if part)
    if address:
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
        return False
    ray.init(
        num_cpus=cpus or local_cpus(),
        include_dashboard=False,
        logging_level="WARNING",
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    return True


@dataclass
class Server:
    """A running application: its name, URL, and whether it owns the local Ray and Serve it started."""

    app: str
    url: str
    control: object
    owns_ray: bool
    drain_s: float

    def stop(self, drain_s: Optional[float] = None) -> tuple:
        """Drain and stop: no new sessions; running ones may end within ``drain_s`` (default: the server's),
        then those left get ``closing``; the application is deleted (and the local Ray stopped when ours).

        Returns ``(sessions served, sessions closed at the deadline)``.
        """
        seconds = self.drain_s if drain_s is None else drain_s
        ray.get(self.control.drain.remote(seconds))
        deadline = time.monotonic() + seconds + 1.0
        time.sleep(0.3)  # let every replica learn of the drain and report
        while time.monotonic() < deadline and ray.get(self.control.active.remote()) > 0:
            time.sleep(0.1)
        time.sleep(0.5)
        served, closed = ray.get(self.control.totals.remote())
        if self.owns_ray:
            serve.shutdown()
            ray.shutdown()
        else:
            serve.delete(self.app)
            ray.kill(self.control)
        return served, closed


def start_server(
    config: ServeConfig,
    replicas: int = 1,
    port: int = 8000,
    host: str = "127.0.0.1",
    address: Optional[str] = None,
    route: str = "/",
    app: str = "streamify",
    replica_cpus: Optional[float] = None,
    max_sessions: int = 64,
    drain_s: float = 10.0,
) -> Server:
    """Deploy ``config``'s model as application ``app`` at ``ws://host:port{route}`` and wait until it is ready.

    Joins the cluster at ``address`` or starts a local Ray. ``replica_cpus``: CPUs reserved per replica
    (default: a local Ray's CPUs shared among the replicas, 1 on a cluster). Serve's HTTP proxy is started
    on ``host:port`` unless the cluster already runs one (its own port then holds).
    """
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # Serve's progress lines: the command says it in one
    owns = connect_ray(address)
    if replica_cpus is None:
        replica_cpus = 1.0 if address else min(1.0, local_cpus() / replicas)
    serve.start(http_options={"host": host, "port": port})
    control_name = f"control-{app}-{uuid.uuid4().hex[:8]}"
    control = Control.options(name=control_name, namespace=CONTROL_NAMESPACE).remote()
    config = ServeConfig(**{**config.__dict__, "control": control_name})
    serve.run(
        application(config, replicas, replica_cpus, max_sessions, drain_s),
        name=app,
        route_prefix=route,
        blocking=False,
    )
    shown = "127.0.0.1" if host == "0.0.0.0" else host
    return Server(app, f"ws://{shown}:{port}{route.rstrip('/')}/", control, owns, drain_s)
