"""The operator's own apiserver calls: a client-side rate limit, and 429s retried after a capped wait.

A tiny local HTTP server stands in for an apiserver that turns requests away (priority and fairness);
the real kubernetes ApiClient talks to it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import pytest
from kubernetes import client as k8s

from ferrocanary.kube import rest
from tests.support.http import serving


class _Crowded(BaseHTTPRequestHandler):
    refusals: ClassVar[int] = 0
    hits: ClassVar[int] = 0
    paths: ClassVar[list[str]] = []

    def do_PATCH(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.do_GET()

    def do_GET(self) -> None:
        _Crowded.hits += 1
        _Crowded.paths.append(self.path)
        refuse = _Crowded.hits <= _Crowded.refusals
        body = b'{"message":"too many requests"}' if refuse else b'{"kind":"Thing"}'
        self.send_response(429 if refuse else 200)
        self.send_header("Content-Type", "application/json")
        if refuse:
            self.send_header("Retry-After", "3600")  # an hour: the wait is capped anyway
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def crowded(monkeypatch: pytest.MonkeyPatch) -> Iterator[rest.Rest]:
    monkeypatch.setattr(rest, "MAX_BACKOFF", 0.2)
    _Crowded.hits, _Crowded.refusals, _Crowded.paths = 0, 0, []
    with serving(_Crowded) as where:
        yield rest.Rest(k8s.ApiClient(k8s.Configuration(host=f"http://{where}")), limit=rest.RateLimit(0, 1))


def test_a_429_is_retried_after_a_capped_wait(crowded: rest.Rest) -> None:
    _Crowded.refusals = 2
    began = time.monotonic()
    assert crowded.get("/api/v1/things/x") == {"kind": "Thing"}
    assert _Crowded.hits == 3
    assert time.monotonic() - began < 2  # the hour-long Retry-After was capped


def test_a_429_that_never_ends_is_a_refusal_after_a_few_tries(crowded: rest.Rest) -> None:
    _Crowded.refusals = 100
    with pytest.raises(rest.KubeError, match="429"):
        crowded.get("/api/v1/things/x")
    assert _Crowded.hits == rest.RETRIES_429 + 1


def test_the_rate_limit_spaces_calls_past_the_burst() -> None:
    limit = rest.RateLimit(qps=50, burst=5)
    began = time.monotonic()
    for _ in range(15):
        limit.take()
    assert 0.15 <= time.monotonic() - began < 1.0  # 10 tokens past the burst at 50/s: about 0.2 s
    unlimited = rest.RateLimit(qps=0, burst=1)
    began = time.monotonic()
    for _ in range(1000):
        unlimited.take()
    assert time.monotonic() - began < 0.5


def test_writes_name_ferrocanary_as_their_field_manager_and_reads_send_no_query(crowded: rest.Rest) -> None:
    """managedFields then say which fields ferrocanary owns, not the client library's default name."""
    crowded.patch("/api/v1/namespaces/shop/things/x/status", {"status": {}})
    crowded.get("/api/v1/namespaces/shop/things/x")
    assert _Crowded.paths == [
        "/api/v1/namespaces/shop/things/x/status?fieldManager=ferrocanary",
        "/api/v1/namespaces/shop/things/x",
    ]
