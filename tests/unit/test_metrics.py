"""The metrics sources: Prometheus answers turned into the judge's blocks, and recordings replayed.

Prometheus's answers here are canned (the query_range JSON shape) or come from a tiny local HTTP
server; tests/integration reads a real Prometheus scraping real exporters.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import pytest
from prometheus_client import generate_latest

from ferrocanary.metrics import exposition, protocol
from ferrocanary.metrics.prometheus import PrometheusSource, per_bucket
from ferrocanary.metrics.recording import RecordingSource
from ferrocanary.model import recording
from tests.fakes.prometheus import SELECTORS, T0, counter, full_arm, series, source_with, window
from tests.support import arms
from tests.support.http import serving


def test_blocks_are_aligned_to_the_window_start_and_read_at_their_end() -> None:
    answers = {
        **full_arm("baseline", {0: 100, 1: 110, 2: 120}),
        **full_arm("candidate", {0: 10, 1: 11, 2: 12}),
    }
    source, canned = source_with(answers)
    steps = (protocol.StepChange(T0, 10.0), protocol.StepChange(T0 + timedelta(seconds=20), 30.0))
    rec = source.fetch(window(3, steps))
    assert [b.start for b in rec.blocks] == [T0, T0 + timedelta(seconds=10), T0 + timedelta(seconds=20)]
    assert [b.weight for b in rec.blocks] == [10.0, 10.0, 30.0]
    assert [b.baseline.requests for b in rec.blocks] == [100, 110, 120]
    assert rec.latency_bucket_bounds == (0.01, 0.1)
    assert rec.blocks[1].candidate.latency_counts == pytest.approx((5.5, 4.4, 1.1))
    assert rec.blocks[0].missing == ()
    first_counter = next(c for c in canned.calls if "http_requests_total" in c[0])
    # Raw (no increase(), no extrapolation), summed per process so a reset still shows.
    per_process = "sum by (le, namespace, pod, instance, job)"
    assert f'{per_process} (http_requests_total{{track="baseline"}})' in first_counter[0]
    assert first_counter[1:] == (T0, T0 + timedelta(seconds=30), "10s")  # boundaries 0..3
    assert len(canned.calls) == 1  # every signal of both arms and OpenCost's prices in one request
    assert "node_cpu_hourly_cost" in canned.calls[0][0]
    memory = next(c for c in canned.calls if "resident_memory" in c[0])
    assert memory[1:] == first_counter[1:]  # the same request: gauges are read at the block ends in it
    assert "[10s]" in memory[0]


def test_the_latency_histograms_close_the_looks_one_query() -> None:
    """Prometheus evaluates a chain of ``or`` from the left, carrying every series on the left through
    each later ``or``: the histograms, nine in ten of a look's series, come last in the chain."""
    answers = {**full_arm("baseline", {0: 100, 1: 110}), **full_arm("candidate", {0: 10, 1: 11})}
    source, canned = source_with(answers)
    rec = source.fetch(window(2))
    assert [b.baseline.requests for b in rec.blocks] == [100, 110]  # every part still read back
    parts = re.findall(r'"ferrocanary_part", "([\w.]+)"', canned.calls[0][0])
    assert parts[-2:] == ["baseline.latency", "candidate.latency"]
    assert len(parts) > 2
    assert all(not p.endswith(".latency") for p in parts[:-2])


def test_counters_reset_and_new_series_are_differenced_like_increase() -> None:
    answers = {
        **full_arm("baseline", {0: 100, 1: 100, 2: 100}),
        **full_arm("candidate", {0: 10, 1: 10, 2: 10}),
    }
    answers[("requests", "candidate")] = [
        counter({0: 500, 1: 510, 2: 4, 3: 14}, code="200"),  # the pod restarted in block 1: 4 since the reset
        counter({2: 7, 3: 9}, code="200", pod="new"),  # a pod that appeared during block 1
        counter({0: 50, 1: 60, 3: 80}, code="200", pod="gappy"),  # no point at boundary 2: 20 in block 2
    ]
    rec = source_with(answers)[0].fetch(window(3))
    assert [b.candidate.requests for b in rec.blocks] == [20.0, 11.0, 32.0]


def test_missing_signals_are_listed_but_absent_errors_and_faults_count_as_zero() -> None:
    answers = {**full_arm("baseline", {0: 100, 1: 100}), **full_arm("candidate", {0: 10, 1: 10})}
    answers[("cpu", "candidate")] = [counter({0: 5.0, 1: 5.01})]  # no CPU sample at boundary 2
    answers[("panics", "candidate")] = [counter({0: 0.0, 1: 0.0, 2: 1.0})]
    answers[("container_faults", "candidate")] = [series({1: 1.0})]
    rec = source_with(answers)[0].fetch(window(2))
    assert rec.blocks[0].missing == ()
    assert rec.blocks[1].missing == ("cpu",)
    assert rec.blocks[1].candidate.faults == 2.0  # a panic plus an OOMKilled restart
    assert rec.blocks[0].candidate.faults == 0.0
    assert rec.blocks[0].baseline.errors == 0.0
    empty = source_with({})[0].fetch(window(1))
    assert empty.blocks[0].missing == ("requests", "latency", "cpu", "memory", "pods")


def test_cumulative_buckets_are_made_monotone_before_differencing() -> None:
    # Buckets scraped a moment apart (or extrapolated by increase()) can come out slightly lower.
    counts = per_bucket({0.01: 50.0, 0.1: 49.0, math.inf: 60.0}, (0.01, 0.05, 0.1))
    assert counts == (50.0, 0.0, 0.0, 10.0)
    assert all(c >= 0 for c in counts)
    assert per_bucket({}, (0.01,)) == (0.0, 0.0)


class _Prometheus(BaseHTTPRequestHandler):
    seen: ClassVar[list[str | None]] = []
    status: ClassVar[int] = 200

    def do_POST(self) -> None:  # the source POSTs its queries as a form
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Prometheus.seen.append(self.headers.get("Authorization"))
        body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}).encode()
        self.send_response(_Prometheus.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def prometheus() -> Iterator[str]:
    _Prometheus.seen.clear()
    _Prometheus.status = 200
    with serving(_Prometheus) as where:
        yield f"http://{where}"


def test_the_bearer_token_goes_in_the_header_and_nowhere_else(prometheus: str) -> None:
    source = PrometheusSource(prometheus, token="tok-123")
    rec = source.fetch(window(2))
    assert set(_Prometheus.seen) == {"Bearer tok-123"}
    assert len(rec.blocks) == 2
    assert rec.blocks[0].missing  # an empty answer is missing data, not zeros
    _Prometheus.status = 400
    with pytest.raises(protocol.MetricsUnavailableError, match="refused a query") as caught:
        source.fetch(window(1))
    assert "tok-123" not in str(caught.value)


def test_no_complete_block_yet_means_no_query_at_all() -> None:
    source, canned = source_with({})
    rec = source.fetch(protocol.Window(T0, T0 + timedelta(seconds=9), 10.0, SELECTORS))
    assert rec.blocks == ()
    assert canned.calls == []


def _recording(n: int) -> recording.Recording:
    blocks = tuple(
        recording.Block(
            start=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=10 * i),
            weight=10.0,
            baseline=arms.PYTHON.block(900, 10),
            candidate=arms.RUST_WIN.block(100, 10),
        )
        for i in range(n)
    )
    return recording.Recording(10.0, arms.BOUNDS, blocks)


def test_a_replayed_recording_releases_blocks_one_interval_at_a_time() -> None:
    source = RecordingSource(_recording(5), origin=T0)
    assert [b.start for b in source.fetch(window(2)).blocks] == [T0, T0 + timedelta(seconds=10)]
    assert len(source.fetch(window(9)).blocks) == 5
    relabelled = RecordingSource(_recording(3), origin=T0, relabel_weights=True).fetch(
        window(3, (protocol.StepChange(T0, 5.0),))
    )
    assert {b.weight for b in relabelled.blocks} == {5.0}
    with pytest.raises(protocol.MetricsUnavailableError, match="10s blocks"):
        source.fetch(protocol.Window(T0, T0 + timedelta(minutes=5), 60.0, SELECTORS))


def test_exported_kpis_disappear_when_the_spec_drops_them() -> None:
    kpi = {
        "name": "p999-latency",
        "estimate": 0.5,
        "lower": 0.4,
        "upper": 0.6,
        "target": 0.7,
        "decision": "Open",
    }
    exposition.publish("ns-x", "c", {"weight": 25, "phase": "Progressing", "kpis": [kpi]}, ["Progressing"])
    text = generate_latest(exposition.REGISTRY).decode()
    assert 'ferrocanary_kpi_upper_ratio{kpi="p999-latency",name="c",namespace="ns-x"} 0.6' in text
    assert 'ferrocanary_kpi_eta_seconds{kpi="p999-latency"' not in text  # unknown ETA: no sample, not 0
    exposition.publish("ns-x", "c", {"weight": 25, "phase": "Progressing", "kpis": []}, ["Progressing"])
    assert 'kpi="p999-latency",name="c"' not in generate_latest(exposition.REGISTRY).decode()
