"""The sandbox's Gateway: a real nginx on 127.0.0.1 that splits traffic as an HTTPRoute says.

A Gateway API implementation watches HTTPRoutes and programs its data plane. This one follows
one HTTPRoute: for each ``backendRef`` (a Service and a weight) it finds the Service's pods
(label selector), asks where they answer (``Endpoints``: the kwok stand-in's local processes, or a
real node's ready pods at their IPs), and writes an nginx ``upstream`` whose per-server weights
reproduce the route's split (a backend's weight shared evenly among its endpoints; weight 0 marks
servers ``down``). nginx is reloaded with SIGHUP only
when the programmed split changes, as a real gateway reconciles. nginx's smooth weighted
round-robin then sends, e.g., 5 of every 100 requests to the candidate.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ferrocanary.kube import rest
from ferrocanary.local import processes


class Endpoints(Protocol):
    """Where a Service's pods answer, as ``host:port``: the kwok stand-in's local processes
    (``pods.PodRunner``) or a real node's ready pods at their pod IPs (``demo.PodAddresses``)."""

    def endpoints(self, pod_names: set[str]) -> list[str]: ...


class GatewayError(RuntimeError):
    """nginx refused its configuration or would not start; the message holds its error log."""


@dataclass(frozen=True)
class Backend:
    service: str
    weight: int
    endpoints: tuple[str, ...]


def upstream_servers(backends: list[Backend]) -> list[str]:
    """nginx ``server`` lines for the backends, preserving each backend's share of the traffic.

    A backend's weight is split evenly over its endpoints. nginx weights are integers >= 1, so
    every weight is first multiplied by the largest endpoint count to keep the rounding small.
    """
    lines: list[str] = []
    scale = max((len(b.endpoints) for b in backends if b.endpoints), default=1)
    for backend in backends:
        for address in backend.endpoints:
            if backend.weight <= 0:
                lines.append(f"server {address} down;")
            else:
                share = max(1, round(backend.weight * scale / len(backend.endpoints)))
                lines.append(f"server {address} weight={share} max_fails=0;")
    return lines


class NginxGateway:
    """One nginx master process on 127.0.0.1:``port``, configured by ``program``."""

    def __init__(self, directory: Path, nginx: Path, port: int) -> None:
        self.directory = directory
        self.nginx = nginx
        self.port = port
        self.started: processes.Started | None = None
        self.programmed: tuple[str, ...] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def conf(self) -> Path:
        return self.directory / "nginx.conf"

    def _write(self, servers: list[str]) -> None:
        d = self.directory
        for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi", "logs"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        upstream = "\n    ".join(servers) if servers else "server 127.0.0.1:9 down;  # no endpoints yet"
        self.conf.write_text(
            f"""# Written by ferrocanary's sandbox gateway; regenerated whenever the HTTPRoute changes.
worker_processes 1;
# A reload waits for the old worker to leave (see _reload); bound how long a busy one may linger.
worker_shutdown_timeout 5s;
daemon off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 2048; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  client_max_body_size 2m;
  client_body_buffer_size 2m;
  upstream route {{
    {upstream}
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{self.port};
    location / {{
      proxy_pass http://route;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream off;
      proxy_buffering off;
    }}
  }}
}}
"""
        )

    def _argv(self, *extra: str) -> list[str]:
        return [
            str(self.nginx),
            "-p",
            str(self.directory),
            "-c",
            str(self.conf),
            "-e",
            str(self.directory / "logs" / "error.log"),
            *extra,
        ]

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write([])
        self._check()
        self.started = processes.start("gateway", self._argv(), self.directory / "logs" / "nginx.out")
        processes.wait_until(self.started, lambda: not processes.port_is_free(self.port), 20, "listening")
        self.programmed = ()

    def _check(self) -> None:
        proc = subprocess.run(self._argv("-t"), capture_output=True, text=True, check=False, timeout=30)
        if proc.returncode != 0:
            raise GatewayError(f"nginx refused {self.conf}: {proc.stderr.strip()}")

    def program(self, backends: list[Backend]) -> bool:
        """Apply a split; return True if nginx was reloaded (False: nothing changed)."""
        servers = upstream_servers(backends)
        if tuple(servers) == self.programmed:
            return False
        self._write(servers)
        self._check()
        if self.started is not None:
            self._reload(self.started.pid)
        self.programmed = tuple(servers)
        return True

    def _reload(self, master: int, timeout: float = 15.0) -> None:
        """SIGHUP nginx and return once the new configuration alone accepts connections.

        The old worker keeps accepting on the shared socket for a moment after the signal, with its
        own round-robin state and the old weights; a split counted in that window is off by a few
        requests. Only once every old worker has exited is the new split the one in force.
        """
        old_workers = processes.children(master)
        with contextlib.suppress(ProcessLookupError):
            os.kill(master, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            workers = processes.children(master)
            if workers and not workers & old_workers:
                return
            time.sleep(0.02)
        raise GatewayError(f"nginx did not replace its workers within {timeout:.0f} s after a reload")

    def stop(self) -> None:
        if self.started is not None:
            processes.stop(self.started.pid, self.started.executable)
            self.started = None


def route_backends(api: rest.JsonApi, namespace: str, route: str, runner: Endpoints) -> list[Backend]:
    """The backends of an HTTPRoute's first rule, with their Services' local endpoints."""
    obj = api.get(f"/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes/{route}")
    rules: list[Mapping[str, Any]] = obj.get("spec", {}).get("rules", [])
    refs: list[Mapping[str, Any]] = rules[0].get("backendRefs", []) if rules else []
    backends = []
    for ref in refs:
        service = api.get(f"/api/v1/namespaces/{namespace}/services/{ref['name']}")
        selector: Mapping[str, str] = service.get("spec", {}).get("selector", {})
        pods = api.get(f"/api/v1/namespaces/{namespace}/pods").get("items", [])
        names = {
            p["metadata"]["name"]
            for p in pods
            if selector and all(p["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())
        }
        backends.append(Backend(ref["name"], int(ref.get("weight", 1)), tuple(runner.endpoints(names))))
    return backends


class RouteFollower:
    """Keeps the gateway programmed from the HTTPRoute, polling like an informer's resync."""

    def __init__(self, gateway: NginxGateway, api: rest.JsonApi, namespace: str, route: str, *,
                 runner: Endpoints, poll_seconds: float = 0.5) -> None:  # fmt: skip
        self.gateway = gateway
        self.api = api
        self.namespace = namespace
        self.route = route
        self.runner = runner
        self.poll_seconds = poll_seconds
        self.weights: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sync(self) -> None:
        backends = route_backends(self.api, self.namespace, self.route, self.runner)
        self.weights = {b.service: b.weight for b in backends}
        self.gateway.program(backends)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="route-follower", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(rest.KubeError, GatewayError, OSError):
                self.sync()
            self._stop.wait(self.poll_seconds)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
