"""Scale: each look fetches only the new blocks, and every fetch is bounded (deadline, size, slots).

Prometheus is canned here (query_range answers cut to the asked range) or a tiny local HTTP server;
tests/integration/test_scale.py runs the real operator against a real Prometheus.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import pytest
from prometheus_client import generate_latest

from ferrocanary.metrics import blockstore, exposition, protocol, transport
from ferrocanary.metrics.prometheus import PrometheusSource
from tests.fakes.prometheus import T0, Canned, counter, full_arm, window
from tests.support.http import serving


class Ranged(Canned):
    """Canned answers, but only the points inside the asked range (as Prometheus answers)."""

    def __call__(
        self, query: str, start_time: datetime, end_time: datetime, step: str
    ) -> list[dict[str, Any]]:
        answer = super().__call__(query, start_time, end_time, step)
        cut = []
        for series in answer:
            values = [v for v in series["values"] if start_time.timestamp() <= v[0] <= end_time.timestamp()]
            if values:
                cut.append({"metric": series["metric"], "values": values})
        return cut


def _answers() -> dict[tuple[str, str], list[dict[str, Any]]]:
    blocks = {k: 100.0 + k for k in range(6)}
    answers = {
        **full_arm("baseline", blocks),
        **full_arm("candidate", {k: v / 10 for k, v in blocks.items()}),
    }
    answers[("requests", "candidate")] = [
        counter({0: 500, 1: 510, 2: 4, 3: 14, 4: 20, 5: 30, 6: 31}, code="200"),  # a reset in block 1
        counter({4: 7, 5: 9, 6: 10}, code="200", pod="new"),  # appears during block 3
        counter({0: 50, 1: 60, 2: 61, 4: 80, 5: 90, 6: 95}, code="200", pod="gappy"),  # no point at 3
    ]
    return answers


def _source(store: blockstore.BlockStore | None) -> tuple[PrometheusSource, Ranged]:
    source = PrometheusSource("http://prometheus.invalid:9090", store=store, owner=("shop", "scorer"))
    canned = Ranged(_answers())
    source._client.custom_query_range = canned  # type: ignore[method-assign]
    return source, canned


def test_a_look_fetches_only_new_blocks_and_reads_them_as_one_fetch_from_the_start_would() -> None:
    store = blockstore.BlockStore()
    steps = (protocol.StepChange(T0, 10.0),)
    source, canned = _source(store)
    source.fetch(window(3, steps))
    canned.calls.clear()
    later = source.fetch(window(6, (*steps, protocol.StepChange(T0 + timedelta(seconds=40), 20.0))))
    whole = _source(None)[0].fetch(window(6, (*steps, protocol.StepChange(T0 + timedelta(seconds=40), 20.0))))
    assert later == whole  # same blocks, resets, new pods, gaps and weights
    assert [b.candidate.requests for b in later.blocks] == [20.0, 5.0, 10.0, 32.0, 22.0, 7.0]
    counters = [c for c in canned.calls if "sum by" in c[0]]
    assert counters
    assert {c[1] for c in counters} == {T0 + timedelta(seconds=30)}
    canned.calls.clear()
    assert source.fetch(window(6, steps)).blocks[4].weight == 10.0  # weights come from the steps given
    assert canned.calls == []  # nothing new: no query at all


def test_a_failed_fetch_keeps_nothing_and_a_finished_canary_is_forgotten() -> None:
    store = blockstore.BlockStore()
    source, canned = _source(store)
    source.fetch(window(2))

    def broken(*_: Any, **__: Any) -> list[dict[str, Any]]:
        raise protocol.MetricsUnavailableError("down")

    source._client.custom_query_range = broken  # type: ignore[method-assign]
    with pytest.raises(protocol.MetricsUnavailableError):
        source.fetch(window(4))
    source._client.custom_query_range = canned  # type: ignore[method-assign]
    assert source.fetch(window(4)) == _source(None)[0].fetch(window(4))
    assert len(store) == 1
    store.forget(("shop", "scorer"))
    assert len(store) == 0


def test_the_store_keeps_at_most_its_capacity_and_forgets_one_canary_only() -> None:
    store = blockstore.BlockStore(capacity=3)
    for key, owner in (("a1", "a"), ("b1", "b"), ("a2", "a"), ("c1", "c")):  # a1 goes past capacity
        store.entry(key, ("shop", owner))
    assert len(store) == 3
    store.forget(("shop", "a"))
    assert len(store) == 2
    kept = store.entry("b1", ("shop", "b"))
    store.forget(("shop", "nobody"))
    assert store.entry("b1", ("shop", "b")) is kept  # still held: nothing of b was dropped
    assert len(store) == 2


# --- the transport: one deadline, bounded answers, Retry-After, slots ------------------------------


class _Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps connections open, as Prometheus does
    mode: ClassVar[str] = "ok"
    hits: ClassVar[int] = 0
    clients: ClassVar[set[tuple[str, int]]] = set()
    headers_out: ClassVar[dict[str, str]] = {}

    def do_POST(self) -> None:  # the source POSTs its queries as a form
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Slow.hits += 1
        _Slow.clients.add(self.client_address)
        if _Slow.mode == "busy":
            self.send_response(429)
            for key, value in _Slow.headers_out.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}).encode()
        if _Slow.mode == "huge":
            result = [{"metric": {"i": str(i)}, "values": []} for i in range(transport.MAX_SERIES + 1)]
            body = json.dumps({"status": "success", "data": {"result": result}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if _Slow.mode == "trickle":  # a byte every 0.2 s: never idle long enough for a read timeout
            for byte in body:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.2)
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def slow() -> Iterator[str]:
    _Slow.mode, _Slow.hits, _Slow.headers_out, _Slow.clients = "ok", 0, {}, set()
    with serving(_Slow) as where:
        yield f"http://{where}"


def test_one_deadline_covers_the_whole_fetch_however_slowly_bytes_arrive(slow: str) -> None:
    _Slow.mode = "trickle"
    source = PrometheusSource(slow, timeout_seconds=1.5)
    began = time.monotonic()
    with pytest.raises(protocol.MetricsUnavailableError, match=r"within 1\.5s"):
        source.fetch(window(2))
    assert time.monotonic() - began < 4


def test_an_answer_past_the_series_limit_is_refused_with_what_to_do(slow: str) -> None:
    _Slow.mode = "huge"
    with pytest.raises(protocol.MetricsUnavailableError, match=r"narrow spec\.analysis\.selectors"):
        PrometheusSource(slow).fetch(window(1))


def test_a_short_retry_after_is_waited_for_and_a_long_one_holds_without_asking_again(slow: str) -> None:
    _Slow.mode, _Slow.headers_out = "busy", {"Retry-After": "1"}
    with pytest.raises(protocol.MetricsUnavailableError, match="HTTP 429"):
        PrometheusSource(slow).fetch(window(1))
    assert _Slow.hits == 2  # waited a second, asked once more
    _Slow.hits, _Slow.headers_out = 0, {"Retry-After": "120"}
    with pytest.raises(protocol.MetricsUnavailableError, match="retry after 120s"):
        PrometheusSource(slow).fetch(window(1))
    assert _Slow.hits == 1
    _Slow.mode = "ok"
    with pytest.raises(protocol.MetricsUnavailableError, match="Retry-After"):
        PrometheusSource(slow).fetch(window(1))  # honoured: nothing sent until it passes
    assert _Slow.hits == 1


def test_looks_reuse_one_connection_and_decoding_holds_no_fetch_slot(
    slow: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each worker keeps its connection to Prometheus alive from look to look, and a look's slot is
    free again once the answer's bytes are in: decoding is the operator's work, not Prometheus'."""
    gate = transport._gate(transport.RangeClient(slow, slow, headers=None, verify_tls=True, timeout=5).where)
    free_while_decoding: list[int] = []
    decode = transport.RangeClient._result

    def watched(self: transport.RangeClient, body: bytes) -> list[dict[str, Any]]:
        free_while_decoding.append(gate.free)
        return decode(self, body)

    monkeypatch.setattr(transport.RangeClient, "_result", watched)
    for _ in range(3):
        PrometheusSource(slow).fetch(window(2))  # a new source per look, as the operator makes
    assert free_while_decoding == [gate.size] * 3
    assert _Slow.hits == 3
    assert len(_Slow.clients) == 1, _Slow.clients  # one TCP connection for the three looks


def test_a_long_range_is_cut_below_prometheus_points_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "MAX_POINTS", 3)
    client = transport.RangeClient("http://x", "http://x", headers=None, verify_tls=True, timeout=5)
    asked: list[tuple[float, float]] = []

    def answer(query: str, first: datetime, last: datetime, step: str) -> list[dict[str, Any]]:
        asked.append((first.timestamp() - T0.timestamp(), last.timestamp() - T0.timestamp()))
        return [{"metric": {"le": "1"}, "values": [[first.timestamp(), "1"]]}]

    client._get = answer  # type: ignore[method-assign]
    merged = client.custom_query_range("q", T0, T0 + timedelta(seconds=70), "10s")
    assert asked == [(0, 20), (30, 50), (60, 70)]
    assert len(merged) == 1
    assert len(merged[0]["values"]) == 3


def test_a_finished_canary_drops_its_per_look_series() -> None:
    exposition.count_decision("shop", "done", "Continue")
    exposition.observe_reconcile("shop", "done", 0.01)
    assert 'name="done"' in generate_latest(exposition.REGISTRY).decode()
    exposition.forget_activity("shop", "done")
    assert 'name="done"' not in generate_latest(exposition.REGISTRY).decode()


def test_kept_blocks_are_packed_and_read_back_as_fetched() -> None:
    entry = blockstore.Entry()
    fresh = blockstore.Entry(count=2)
    fresh.counters[("baseline", "latency")] = {0: {"0.1": 3.0, "+Inf": 4.0}, 1: {"0.1": 1.0, "0.5": 2.0}}
    entry.merge(fresh)
    assert entry.blocks(("baseline", "latency"), 2) == fresh.counters[("baseline", "latency")]
    assert entry.blocks(("baseline", "latency"), 1) == {0: {"0.1": 3.0, "+Inf": 4.0}}
