"""Bad, slow-to-retry and hostile Prometheus answers become a hold with a reason in our own words.

A real HTTP server on 127.0.0.1 plays Prometheus and answers each query with what a broken proxy, a
broken exporter or a hostile address would send; the source must raise MetricsUnavailableError (the
operator then holds) and never copy the answer's text, the address's credentials or the token.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import pytest

from ferrocanary.metrics import protocol
from ferrocanary.metrics.prometheus import PrometheusSource
from tests.support.http import serving

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
SELECTORS = protocol.ArmSelectors('track="baseline"', 'track="candidate"', 'pod=~"py-.*"', 'pod=~"rs-.*"')
WINDOW = protocol.Window(T0, T0 + timedelta(seconds=23), 10.0, SELECTORS)
SECRET_PAGE = b"internal admin page: db-password=hunter2"


class _Answer(BaseHTTPRequestHandler):
    status: ClassVar[int] = 200
    body: ClassVar[bytes] = b""
    headers_out: ClassVar[dict[str, str]] = {}

    def do_POST(self) -> None:  # the source POSTs its queries as a form
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(_Answer.status)
        for key, value in {"Content-Type": "application/json", **_Answer.headers_out}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(_Answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def server() -> Iterator[str]:
    with serving(_Answer) as where:
        yield where


def _answer(status: int, body: bytes, **headers: str) -> None:
    _Answer.status, _Answer.body, _Answer.headers_out = status, body, headers


@pytest.mark.parametrize(
    ("status", "body", "says"),
    [
        (200, b'{"status": "success"}', "could not be read"),  # no data
        (200, b'{"status": "success", "data": {}}', "could not be read"),  # no result
        (
            200,
            b'{"status":"success","data":{"result":[{"metric":{},"values":[[1,"fast"]]}]}}',
            "could not be read",
        ),
        (
            200,
            b'{"status":"success","data":{"result":[{"metric":{},"values":[["soon","1"]]}]}}',
            "could not be read",
        ),
        (200, b"<html>gateway</html>", "not JSON"),
        (400, SECRET_PAGE, "refused a query (HTTP 400)"),
    ],
)
def test_an_answer_that_cannot_be_read_is_unavailable_metrics_in_our_words(
    server: str, status: int, body: bytes, says: str
) -> None:
    _answer(status, body)
    source = PrometheusSource(f"http://admin:s3cret@{server}/", token="tok-123")
    with pytest.raises(protocol.MetricsUnavailableError) as caught:
        source.fetch(WINDOW)
    message = str(caught.value)
    assert says in message
    assert f"http://{server}" in message  # where, without the credentials
    for leaked in ("s3cret", "admin", "tok-123", "hunter2", "gateway"):
        assert leaked not in message
    assert "s3cret" not in repr(source)


def test_a_retry_after_of_a_day_is_not_slept_on(server: str) -> None:
    _answer(503, b"busy", **{"Retry-After": "86400"})
    source = PrometheusSource(f"http://{server}", timeout_seconds=2.0)
    began = time.monotonic()
    with pytest.raises(protocol.MetricsUnavailableError):
        source.fetch(WINDOW)
    assert time.monotonic() - began < 30  # one quick retry at most, not a day
