"""Synthetic arms for the scale benchmark: many builds' metrics-contract series from one process.

``python -m ferrocanary.bench.synthetic CONFIG PORT [REFRESH]`` serves ``/metrics`` on 127.0.0.1:PORT
with, for every arm in CONFIG (a JSON list of ``Arm`` fields), the series a workload exports under the metrics
contract: 140 latency buckets plus ``_count``/``_sum``, requests by code, CPU seconds, resident memory,
start time and panics, labelled ``namespace``, ``pod`` (a real pod of the arm's Deployment, made
Running by kwok) and ``track``. Every ``REFRESH`` seconds each arm serves a Poisson number of requests
whose latencies are drawn (multinomial over the buckets) from a lognormal body with a slow tail, and
the exposition is rebuilt once; scrapes in between get the same text, so serving stays cheap however
often Prometheus asks. All arms are drawn at once with numpy, so a thousand canaries cost well under
a core here.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

REFRESH = 5.0
BUCKETS = 140
ROUTE = "/v1/score"


def bounds(count: int = BUCKETS, first: float = 0.0005, last: float = 10.0) -> tuple[float, ...]:
    """``count`` exponential bucket bounds from ``first`` to ``last`` seconds (the contract's shape)."""
    factor = (last / first) ** (1 / (count - 1))
    return tuple(first * factor**k for k in range(count))


@dataclass(frozen=True)
class Arm:
    """One build of one canary: where its series say they come from, and how it behaves."""

    namespace: str
    pod: str
    track: str
    rps: float
    median_seconds: float
    cpu_per_request: float
    memory_bytes: float
    error_rate: float = 0.001

    def probabilities(self, edges: tuple[float, ...]) -> np.ndarray:
        """Bucket probabilities (last = +Inf): 97% lognormal body, 3% tail six times slower."""
        x = np.asarray(edges)
        body = stats.lognorm.cdf(x, 0.4, scale=self.median_seconds)
        tail = stats.lognorm.cdf(x, 0.5, scale=self.median_seconds * 6.0)
        cumulative = np.append(0.97 * body + 0.03 * tail, 1.0)
        return np.diff(np.concatenate(([0.0], cumulative)))


class Arms:
    """Cumulative counters of every arm, advanced by ``step`` and rendered by ``text``."""

    def __init__(self, arms: list[Arm], seed: int = 20251129) -> None:
        self.arms = arms
        self.edges = bounds()
        self.rng = np.random.default_rng(seed)
        self.pvals = np.vstack([a.probabilities(self.edges) for a in arms]) if arms else np.zeros((0, 1))
        self.buckets = np.zeros((len(arms), len(self.edges) + 1))
        self.ok = np.zeros(len(arms))
        self.errors = np.zeros(len(arms))
        self.cpu = np.zeros(len(arms))
        self.latency_sum = np.zeros(len(arms))
        self.started = time.time()
        self.mids = np.append(np.asarray(self.edges), self.edges[-1] * 1.1)
        les = [_go_float(b) for b in self.edges] + ["+Inf"]
        self.prefixes = [
            [
                f'http_request_duration_seconds_bucket{{namespace="{a.namespace}",pod="{a.pod}",'
                f'track="{a.track}",route="{ROUTE}",le="{le}"}} '
                for le in les
            ]
            for a in arms
        ]
        self.labels = [f'namespace="{a.namespace}",pod="{a.pod}",track="{a.track}"' for a in arms]

    def step(self, seconds: float) -> None:
        if not self.arms:
            return
        rates = np.asarray([a.rps for a in self.arms]) * seconds
        served = self.rng.poisson(rates)
        counts = self.rng.multinomial(served, self.pvals)
        errors = self.rng.binomial(served, np.asarray([a.error_rate for a in self.arms]))
        per_request = np.asarray([a.cpu_per_request for a in self.arms])
        self.buckets += counts
        self.ok += served - errors
        self.errors += errors
        self.latency_sum += counts @ self.mids
        self.cpu += served * per_request * self.rng.lognormal(0.0, 0.05, len(self.arms)) + 0.001 * seconds

    def text(self) -> bytes:
        lines: list[str] = [
            "# TYPE http_request_duration_seconds histogram",
        ]
        cumulative = np.cumsum(self.buckets, axis=1)
        for i, arm in enumerate(self.arms):
            lines.extend(p + str(int(c)) for p, c in zip(self.prefixes[i], cumulative[i], strict=True))
            route = f'{self.labels[i]},route="{ROUTE}"'
            lines.append(f"http_request_duration_seconds_count{{{route}}} {int(cumulative[i, -1])}")
            lines.append(f"http_request_duration_seconds_sum{{{route}}} {self.latency_sum[i]:.3f}")
            lines.append(f'http_requests_total{{{route},code="200"}} {int(self.ok[i])}')
            lines.append(f'http_requests_total{{{route},code="500"}} {int(self.errors[i])}')
            lines.append(f"panics_total{{{self.labels[i]}}} 0")
            lines.append(f"process_cpu_seconds_total{{{self.labels[i]}}} {self.cpu[i]:.4f}")
            lines.append(f"process_resident_memory_bytes{{{self.labels[i]}}} {arm.memory_bytes:.0f}")
            lines.append(f"process_start_time_seconds{{{self.labels[i]}}} {self.started:.0f}")
        return ("\n".join(lines) + "\n").encode()


def _go_float(value: float) -> str:
    """A bucket bound as Prometheus clients print it (shortest repr)."""
    return repr(float(value)) if math.isfinite(value) else "+Inf"


def serve(arms: list[Arm], port: int, refresh: float = REFRESH) -> None:
    """Serve the arms on 127.0.0.1:port until killed, advancing them every ``refresh`` seconds."""
    state = Arms(arms)
    current = {"text": state.text()}

    def advance() -> None:
        last = time.monotonic()
        while True:
            time.sleep(refresh)
            now = time.monotonic()
            state.step(now - last)
            last = now
            current["text"] = state.text()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = current["text"]
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    threading.Thread(target=advance, daemon=True).start()
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main(argv: list[str]) -> int:
    config, port = Path(argv[0]), int(argv[1])
    refresh = float(argv[2]) if len(argv) > 2 else REFRESH
    serve([Arm(**a) for a in json.loads(config.read_text())], port, refresh)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
