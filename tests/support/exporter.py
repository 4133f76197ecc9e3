"""A two-arm service as Prometheus sees it: live /metrics for a baseline and a candidate build.

Run as ``python -m tests.support.exporter CONFIG.json``. Requests arrive at ``rps``
(Poisson); each goes to the candidate with the probability the routing object in the real control
plane says (the HTTPRoute's backendRef weights, or the two Deployments' replica ratio, re-read every
second), so when the operator moves a weight the traffic follows, as through a real gateway. Each
arm's latencies, errors, CPU seconds and memory come from its ``arms.ArmModel``; the exposition uses
the metrics contract's names, labels and buckets. ``GET /panic`` on the candidate's port counts a
Rust panic. No arm label is exported: Prometheus adds ``track`` from the scrape target, as in a
cluster. Writes ``{"baseline": port, "candidate": port}`` to the config's ``ready_file`` once serving.

With ``"dialect": "istio"`` or ``"ingress-nginx"`` in the config (and ``namespace``, ``deployments``,
``services``), the same traffic is exported as that system names and labels it instead, with
cAdvisor's container CPU and memory series for the resources; ``"coarse": true`` uses the system's
default latency buckets instead of the contract's fine ones. ``db_calls_per_request`` (per arm) adds
a ``db_queries_total`` counter, Poisson around that many per request, for custom KPIs.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.utils import floatToGoString

from ferrocanary.kube import client, resources, rest
from tests.support import arms

ROUTE = "/v1/score"
TICK_SECONDS = 0.2


class Arm:
    """Cumulative counters of one build, drawn tick by tick from its model."""

    def __init__(self, model: arms.ArmModel, rng: np.random.Generator) -> None:
        self.model = model
        self.rng = rng
        self.probabilities = model.bucket_probabilities(arms.BOUNDS)
        self.buckets = np.zeros(len(arms.BOUNDS) + 1)
        self.ok = 0
        self.errors = 0
        self.latency_sum = 0.0
        self.cpu = 0.0
        self.panics = 0
        self.db_rate = 0.0  # db_queries_total per request (a custom KPI's numerator); 0: not exported
        self.db_queries = 0
        self.started = time.time()
        self.lock = threading.Lock()

    def serve(self, requests: int, seconds: float) -> None:
        counts = (
            self.rng.multinomial(requests, self.probabilities) if requests else np.zeros_like(self.buckets)
        )
        errors = int(self.rng.binomial(requests, self.model.error_rate)) if requests else 0
        mids = np.append(np.asarray(arms.BOUNDS), arms.BOUNDS[-1] * 1.1)
        cpu = requests * self.model.cpu_per_request * float(self.rng.lognormal(0.0, 0.05))
        with self.lock:
            self.buckets += counts
            self.ok += requests - errors
            self.errors += errors
            self.latency_sum += float(counts @ mids)
            self.cpu += cpu + self.model.idle_cpu_per_second * seconds
            self.db_queries += int(self.rng.poisson(requests * self.db_rate)) if requests else 0

    def exposition(self) -> str:
        with self.lock:
            cumulative = np.cumsum(self.buckets)
            lines = [
                "# HELP http_request_duration_seconds Request latency.",
                "# TYPE http_request_duration_seconds histogram",
            ]
            for bound, count in zip([*arms.BOUNDS, math.inf], cumulative, strict=True):
                le = floatToGoString(bound)  # type: ignore[no-untyped-call]  # untyped in prometheus_client
                lines.append(f'http_request_duration_seconds_bucket{{route="{ROUTE}",le="{le}"}} {count:.0f}')
            total = self.ok + self.errors
            lines += [
                f'http_request_duration_seconds_count{{route="{ROUTE}"}} {total}',
                f'http_request_duration_seconds_sum{{route="{ROUTE}"}} {self.latency_sum:.6f}',
                "# HELP http_requests_total Requests by route and status code.",
                "# TYPE http_requests_total counter",
                f'http_requests_total{{route="{ROUTE}",code="200"}} {self.ok}',
                f'http_requests_total{{route="{ROUTE}",code="500"}} {self.errors}',
                "# HELP panics_total Rust panics caught at the pyo3 boundary.",
                "# TYPE panics_total counter",
                f"panics_total {self.panics}",
                "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.",
                "# TYPE process_cpu_seconds_total counter",
                f"process_cpu_seconds_total {self.cpu:.6f}",
                "# HELP process_resident_memory_bytes Resident memory size in bytes.",
                "# TYPE process_resident_memory_bytes gauge",
                f"process_resident_memory_bytes {self.model.memory_bytes:.0f}",
                "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.",
                "# TYPE process_start_time_seconds gauge",
                f"process_start_time_seconds {self.started:.3f}",
            ]
            if self.db_rate:
                lines += ["# TYPE db_queries_total counter", f"db_queries_total {self.db_queries}"]
        return "\n".join(lines) + "\n"


ISTIO_DEFAULT_MS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
NGINX_DEFAULT_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def _cumulative_at(fine: np.ndarray, bounds: tuple[float, ...]) -> list[float]:
    """Cumulative counts at ``bounds`` (seconds) from the fine contract buckets (last = +Inf)."""
    edges = np.asarray(arms.BOUNDS)
    return [
        float(fine[np.searchsorted(edges, b * (1 + 1e-9), side="right") - 1]) if b >= edges[0] else 0.0
        for b in bounds
    ]


def dialect_exposition(arm: Arm, name: str, config: dict[str, Any]) -> str:
    """``arm``'s traffic as Istio's sidecar or the ingress-nginx controller exports it, plus cAdvisor."""
    ns, deployment = config["namespace"], config["deployments"][name]
    coarse = bool(config.get("coarse"))
    with arm.lock:
        cumulative = np.cumsum(arm.buckets)
        ok, errors, cpu = arm.ok, arm.errors, arm.cpu
    total = ok + errors
    lines: list[str] = []
    if config["dialect"] == "istio":
        labels = (
            f'reporter="destination",destination_workload="{deployment}",destination_workload_namespace="{ns}",'
            f'destination_service_name="{config["services"][name]}"'
        )
        lines += [
            "# TYPE istio_requests_total counter",
            f'istio_requests_total{{{labels},response_code="200"}} {ok}',
            f'istio_requests_total{{{labels},response_code="503"}} {errors}',
            "# TYPE istio_request_duration_milliseconds histogram",
        ]
        seconds = tuple(b / 1000 for b in ISTIO_DEFAULT_MS) if coarse else arms.BOUNDS
        series, scale = "istio_request_duration_milliseconds", 1000.0
    else:
        base, canary_svc = config["services"]["baseline"], config["services"]["candidate"]
        canary = "" if name == "baseline" else f"{ns}-{canary_svc}-8080"
        labels = f'namespace="{ns}",ingress="{config["ingress"]}",service="{base}",canary="{canary}"'
        lines += [
            "# TYPE nginx_ingress_controller_requests counter",
            f'nginx_ingress_controller_requests{{{labels},status="200"}} {ok}',
            f'nginx_ingress_controller_requests{{{labels},status="502"}} {errors}',
            "# TYPE nginx_ingress_controller_request_duration_seconds histogram",
        ]
        seconds = NGINX_DEFAULT_S if coarse else arms.BOUNDS
        series, scale = "nginx_ingress_controller_request_duration_seconds", 1.0
    for bound, count in zip(seconds, _cumulative_at(cumulative, seconds), strict=True):
        le = floatToGoString(round(bound * scale, 12))  # type: ignore[no-untyped-call]  # untyped upstream
        lines.append(f'{series}_bucket{{{labels},le="{le}"}} {count:.0f}')
    lines += [f'{series}_bucket{{{labels},le="+Inf"}} {total}', f"{series}_count{{{labels}}} {total}"]
    pod = f'namespace="{ns}",pod="{config["pods"][name]}",container="app"'
    lines += [
        "# TYPE container_cpu_usage_seconds_total counter",
        f"container_cpu_usage_seconds_total{{{pod}}} {cpu:.6f}",
        "# TYPE container_memory_working_set_bytes gauge",
        f"container_memory_working_set_bytes{{{pod}}} {arm.model.memory_bytes:.0f}",
    ]
    return "\n".join(lines) + "\n"


class Split:
    """The candidate's share of traffic, as the routing object in the cluster says (re-read every second)."""

    def __init__(self, config: dict[str, Any], kubeconfig: str | None) -> None:
        self.config = config
        self.api = client.connect(kubeconfig) if config.get("kind") != "fixed" else None
        self.weight = float(config.get("weight", 0.0))

    def refresh(self) -> None:
        kind = self.config.get("kind")
        if kind == "fixed" or self.api is None:
            return
        ns = self.config["namespace"]
        try:
            if kind == "httproute":
                route = self.api.get(
                    f"/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes/{self.config['name']}"
                )
                weights = {"baseline": 0, "candidate": 0}
                for ref in route["spec"]["rules"][0].get("backendRefs", []):
                    for arm in weights:
                        if ref.get("name") == self.config[arm]:
                            weights[arm] += int(ref.get("weight", 1))
                total = weights["baseline"] + weights["candidate"]
                self.weight = 100.0 * weights["candidate"] / total if total else 0.0
            elif kind == "deployments":
                base = resources.get_replicas(self.api, ns, self.config["baseline"])
                cand = resources.get_replicas(self.api, ns, self.config["candidate"])
                self.weight = 100.0 * cand / (base + cand) if base + cand else 0.0
        except (rest.KubeError, OSError, KeyError, IndexError):
            pass  # keep the last known split, as a gateway keeps its last config


def _handler(arm: Arm, split: Split, name: str, config: dict[str, Any]) -> type[BaseHTTPRequestHandler]:
    dialect = config.get("dialect", "contract")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                text = arm.exposition() if dialect == "contract" else dialect_exposition(arm, name, config)
                body = text.encode()
                content = "text/plain; version=0.0.4; charset=utf-8"
            elif self.path.startswith("/panic"):
                with arm.lock:
                    arm.panics += 1
                body, content = b"panicked\n", "text/plain"
            elif self.path.startswith("/weight"):
                body, content = f"{split.weight}\n".encode(), "text/plain"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", content)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: Prometheus scrapes every second
            return

    return Handler


def main(config_path: str) -> int:
    config = json.loads(Path(config_path).read_text())
    rng = np.random.default_rng(int(config.get("seed", 1)))
    baseline = Arm(arms.ArmModel(**config["baseline"]), rng)
    candidate = Arm(arms.ArmModel(**config["candidate"]), rng)
    for name, served in (("baseline", baseline), ("candidate", candidate)):
        served.db_rate = float(config.get("db_calls_per_request", {}).get(name, 0.0))
    split = Split(config["split"], config.get("kubeconfig"))
    ports = config.get("ports", {})
    servers = {
        name: ThreadingHTTPServer(("127.0.0.1", int(ports.get(name, 0))), _handler(arm, split, name, config))
        for name, arm in (("baseline", baseline), ("candidate", candidate))
    }
    for server in servers.values():
        threading.Thread(target=server.serve_forever, daemon=True).start()
    # Written aside and renamed, so the test that polls for the file never reads it half-written.
    ready = Path(config["ready_file"])
    partial = ready.with_name(ready.name + ".partial")
    partial.write_text(json.dumps({n: s.server_address[1] for n, s in servers.items()}))
    partial.replace(ready)
    rps = float(config["rps"])
    last_refresh = 0.0
    while True:
        now = time.monotonic()
        if now - last_refresh >= 1.0:
            split.refresh()
            last_refresh = now
        total = int(rng.poisson(rps * TICK_SECONDS))
        to_candidate = int(rng.binomial(total, split.weight / 100.0)) if total else 0
        baseline.serve(total - to_candidate, TICK_SECONDS)
        candidate.serve(to_candidate, TICK_SECONDS)
        time.sleep(max(0.0, TICK_SECONDS - (time.monotonic() - now)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
