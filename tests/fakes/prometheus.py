"""Canned Prometheus query_range answers for unit tests of the Prometheus source.

``Canned`` answers by the signal and arm a query asks for (both arms in one query are told apart by
the ``ferrocanary_part`` tag, arm.signal, the source adds); the helpers build counter and gauge series on 10 s
blocks from ``T0``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from ferrocanary.metrics import protocol
from ferrocanary.metrics.prometheus import PrometheusSource

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
SELECTORS = protocol.ArmSelectors('track="baseline"', 'track="candidate"', 'pod=~"py-.*"', 'pod=~"rs-.*"')


def window(blocks: int, steps: tuple[protocol.StepChange, ...] = ()) -> protocol.Window:
    return protocol.Window(T0, T0 + timedelta(seconds=10 * blocks + 3), 10.0, SELECTORS, steps)


def series(values: dict[int, float], **labels: str) -> dict[str, Any]:
    """A query_range series of a block aggregate (memory, pods): a value at the end of each block."""
    return {"metric": labels, "values": [[T0.timestamp() + 10 * (k + 1), str(v)] for k, v in values.items()]}


def counter(values: dict[int, float], **labels: str) -> dict[str, Any]:
    """A raw counter series: its value at each given boundary k (time T0 + 10 k)."""
    return {"metric": labels, "values": [[T0.timestamp() + 10 * k, str(v)] for k, v in values.items()]}


def cumulative(increments: dict[int, float], start: float = 1000.0) -> dict[int, float]:
    """Counter values at boundaries 0..n for the given per-block increments."""
    values, running = {0: start}, start
    for k in sorted(increments):
        running += increments[k]
        values[k + 1] = running
    return values


def signal_of(query: str) -> str:
    for needle, signal in (
        ('code=~"5.."', "errors"),
        ("http_requests_total", "requests"),
        ("http_request_duration_seconds_bucket", "latency"),
        ("process_cpu_seconds_total", "cpu"),
        ("process_resident_memory_bytes", "memory"),
        ("process_start_time_seconds", "pods"),
        ("panics_total", "panics"),
        ("kube_pod_container", "container_faults"),
        ("node_cpu_hourly_cost", "cpu_price"),  # OpenCost's prices (none canned: the static prices)
        ("node_ram_hourly_cost", "memory_price"),
    ):
        if needle in query:
            return signal
    raise AssertionError(f"unexpected query {query}")


class Canned:
    """Answers query_range by the signal and arm a query asks for."""

    def __init__(self, answers: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, datetime, datetime, str]] = []

    def __call__(
        self, query: str, start_time: datetime, end_time: datetime, step: str
    ) -> list[dict[str, Any]]:
        self.calls.append((query, start_time, end_time, step))
        # Every signal of both arms in one query: each part tagged (label_replace ... or ...).
        tagged = re.findall(r'label_replace\((.+?), "ferrocanary_part", "([\w.]+)", "", ""\)', query)
        answer: list[dict[str, Any]] = []
        for part, tag in tagged or [(query, "")]:
            arm = "candidate" if 'track="candidate"' in part or "rs-" in part else "baseline"
            for series in self.answers.get((signal_of(part), arm), []):
                labels = {**series["metric"], "ferrocanary_part": tag} if tag else series["metric"]
                answer.append({**series, "metric": labels})
        return answer


def source_with(answers: dict[tuple[str, str], list[dict[str, Any]]]) -> tuple[PrometheusSource, Canned]:
    source = PrometheusSource("http://prometheus.invalid:9090")
    canned = Canned(answers)
    source._client.custom_query_range = canned  # type: ignore[method-assign]
    return source, canned


def full_arm(arm: str, blocks: dict[int, float]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    return {
        ("requests", arm): [counter(cumulative(blocks), code="200")],
        ("cpu", arm): [counter(cumulative({k: v / 1000 for k, v in blocks.items()}, start=5.0))],
        ("memory", arm): [series(dict.fromkeys(blocks, 100000000.0))],
        ("pods", arm): [series(dict.fromkeys(blocks, 2))],
        ("latency", arm): [
            counter(cumulative({k: v * 0.5 for k, v in blocks.items()}, start=500), le="0.01"),
            counter(cumulative({k: v * 0.9 for k, v in blocks.items()}, start=900), le="0.1"),
            counter(cumulative(blocks), le="+Inf"),
        ],
    }
