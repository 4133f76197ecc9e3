"""textscore served for real (both builds on loopback): same answers, same errors, the metrics contract.

Each build runs as its own process (`python -m textscore`), started once for this module on a
port the kernel picks, and stopped by pid.
"""

from __future__ import annotations

import http.client
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from textscore import pyscore, spec

from ferrocanary.bench import servers

BUILDS = ("python", "rust")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, servers.Server]]:
    logs = tmp_path_factory.mktemp("textscore")
    started: dict[str, servers.Server] = {}
    try:
        for build in BUILDS:
            started[build] = servers.start(build, Path(logs) / f"{build}.log")
        yield started
    finally:
        for server in started.values():
            servers.stop(server)


def request(
    server: servers.Server,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def metric_samples(server: servers.Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    _status, _headers, body = request(server, "GET", "/metrics")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def test_both_builds_answer_the_same_scores_and_say_which_they_are(
    running: dict[str, servers.Server],
) -> None:
    texts = ["Refund my order, please!", "Ελλάδα 東京 café", "x"]
    answers = {}
    for build, server in running.items():
        status, headers, body = request(server, "POST", "/v1/score", json.dumps({"texts": texts}).encode())
        assert status == 200
        assert headers["X-Build"] == build
        answers[build] = json.loads(body)
    assert answers["python"]["model"] == answers["rust"]["model"] == spec.MODEL
    expected = pyscore.score_batch(texts)
    for build in BUILDS:
        assert all(abs(a - b) <= 1e-9 for a, b in zip(answers[build]["scores"], expected, strict=True))


LONG = "y" * (spec.MAX_TEXT_CHARS + 1)
BAD_INPUT = [
    ("malformed json", b'{"texts": [', 400, "invalid_json"),
    ("invalid utf-8", b'{"texts": ["\xff\xfe"]}', 400, "invalid_json"),
    ("deep nesting", b"[" * 100_000, 400, "invalid_json"),
    ("not an object", b'["a"]', 422, "invalid_request"),
    ("no texts field", b'{"text": ["a"]}', 422, "invalid_request"),
    ("texts not a list", b'{"texts": "abc"}', 422, "invalid_request"),
    ("empty batch", b'{"texts": []}', 422, "invalid_request"),
    ("number in batch", b'{"texts": ["a", 3]}', 422, "invalid_request"),
    ("null in batch", b'{"texts": [null]}', 422, "invalid_request"),
    ("too many texts", json.dumps({"texts": ["a"] * (spec.MAX_TEXTS + 1)}).encode(), 422, "invalid_request"),
    ("text too long", json.dumps({"texts": [LONG]}).encode(), 422, "invalid_request"),
    ("lone surrogate", b'{"texts": ["ok", "\\ud800"]}', 422, "invalid_request"),
]


@pytest.mark.parametrize(("name", "body", "status", "error"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_gets_the_same_clear_4xx_from_both_builds(
    running: dict[str, servers.Server], name: str, body: bytes, status: int, error: str
) -> None:
    answers = set()
    for server in running.values():
        before = metric_samples(server)
        got_status, headers, got_body = request(server, "POST", "/v1/score", body)
        assert got_status == status, (server.build, got_body)
        assert headers["Content-Type"].startswith("application/json")
        doc = json.loads(got_body)
        assert doc["error"] == error
        assert len(doc["message"]) > 10
        answers.add(got_body)
        key = ("http_requests_total", (("code", str(status)), ("route", "/v1/score")))
        assert metric_samples(server)[key] == before.get(key, 0.0) + 1
    assert len(answers) == 1, f"the builds differ on {name}: {answers}"


def test_protocol_errors_are_json_and_counted(running: dict[str, servers.Server]) -> None:
    for server in running.values():
        # An oversized body is refused from its Content-Length, before it is read.
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.putrequest("POST", "/v1/score")
        conn.putheader("Content-Length", str(spec.MAX_BODY_BYTES + 1))
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 413
        assert json.loads(response.read())["error"] == "body_too_large"
        conn.close()
        status, _h, body = request(server, "GET", "/v1/score")
        assert (status, json.loads(body)["error"]) == (405, "method_not_allowed")
        status, _h, body = request(server, "POST", "/nowhere", b"{}")
        assert (status, json.loads(body)["error"]) == (404, "not_found")
        samples = metric_samples(server)
        assert samples[("http_requests_total", (("code", "404"), ("route", "unmatched")))] >= 1
        assert samples[("http_requests_total", (("code", "413"), ("route", "/v1/score")))] >= 1
        assert request(server, "GET", "/healthz")[0] == 200
        assert server.process.poll() is None


CONTRACT_FAMILIES = {
    "http_request_duration_seconds",
    "http_requests",
    "panics",
    "build_info",
    # prometheus_client's process collector, whole (the contract names cpu, rss and start time).
    "process_cpu_seconds",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
}


def test_metrics_expose_exactly_the_contract(running: dict[str, servers.Server]) -> None:
    buckets_by_build = {}
    for build, server in running.items():
        request(server, "POST", "/v1/score", b'{"texts": ["warm"]}')
        _s, headers, body = request(server, "GET", "/metrics")
        assert headers["Content-Type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        assert set(families) == CONTRACT_FAMILIES, build
        assert families["http_requests"].type == "counter"
        assert families["panics"].type == "counter"
        hist = families["http_request_duration_seconds"]
        assert hist.type == "histogram"
        bounds = sorted(
            float(s.labels["le"])
            for s in hist.samples
            if s.name.endswith("_bucket") and s.labels["route"] == "/v1/score" and s.labels["le"] != "+Inf"
        )
        assert bounds[0] == 0.00002  # below the Rust build's fastest answers
        assert bounds[-1] >= 10.0 > bounds[-2]
        growth = [b / a for a, b in itertools.pairwise(bounds)]
        assert max(growth) <= 1.1 + 1e-9
        assert min(growth) >= 1.1 - 1e-9
        buckets_by_build[build] = bounds
        assert {s.labels["route"] for s in hist.samples} <= {"/v1/score", "unmatched"}
        counter_labels = {tuple(sorted(s.labels)) for s in families["http_requests"].samples}
        assert counter_labels == {("code", "route")}
        (info,) = families["build_info"].samples
        assert info.value == 1
        assert info.labels["build"] == build
        assert info.labels["version"] == "0.1.0"
        assert info.labels["native"] == ("none" if build == "python" else "0.1.0+release")
        assert families["panics"].samples[0].value == 0
        assert families["process_resident_memory_bytes"].samples[0].value > 10 * 2**20
    assert buckets_by_build["python"] == buckets_by_build["rust"]
