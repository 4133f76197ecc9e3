"""The Prometheus families of the metrics contract (docs/metrics-contract.md), exactly.

A private registry holds only these: the latency histogram (growth 1.1 buckets from 20 µs to
10 s: the Rust build answers most requests in well under a millisecond, and a quantile that falls
in the open first bucket cannot be measured, so the judge would rightly refuse to decide),
request counts by status, panics caught at the Rust boundary, build_info, and the process
collector (CPU seconds, resident memory, start time). Both builds expose the same names, labels
and buckets; which arm a series belongs to comes from the scrape, not from here.
"""

from __future__ import annotations

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

# No *_created series: they are not in the contract and double the counter series.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]


FIRST_BUCKET = 0.00002  # seconds


def latency_buckets() -> list[float]:
    """FIRST_BUCKET * 1.1**k for k = 0, 1, ... up to the first bound >= 10 s (rounded for tidy labels)."""
    bounds: list[float] = []
    k = 0
    while not bounds or bounds[-1] < 10.0:
        bounds.append(float(f"{FIRST_BUCKET * 1.1**k:.12g}"))  # 12 significant digits
        k += 1
    return bounds


class Metrics:
    def __init__(self, build: str, version: str, native: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time from reading the request line to writing the response",
            ["route"],
            buckets=latency_buckets(),
            registry=self.registry,
        )
        self.requests = Counter(
            "http_requests", "HTTP requests by route and status", ["route", "code"], registry=self.registry
        )
        self.panics = Counter(
            "panics",
            "Rust panics caught at the pyo3 boundary (0 in the python build)",
            registry=self.registry,
        )
        build_info = Gauge(
            "build_info", "The build serving requests", ["build", "version", "native"], registry=self.registry
        )
        build_info.labels(build=build, version=version, native=native).set(1)

    def observe(self, route: str, code: int, seconds: float) -> None:
        self.latency.labels(route=route).observe(seconds)
        self.requests.labels(route=route, code=str(code)).inc()

    def exposition(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)
