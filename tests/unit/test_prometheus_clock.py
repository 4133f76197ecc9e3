"""A Prometheus whose clock is behind the operator's never gives a look a block it has not finished.

A real HTTP server on 127.0.0.1 plays a Prometheus whose clock (its ``Date`` header, as every HTTP
answer carries) is 45 s behind ours, with a canary's ``lag`` of 10 s: by our clock the newest blocks
are complete, by Prometheus' they are still filling. The first fetch must refuse rather than keep a
partial block (retried on the next tick, no hold recorded); the next one ends the window 45 s
earlier; a clock that catches up drops the correction.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import pytest

from ferrocanary.metrics import promclock, protocol, transport
from ferrocanary.metrics.prometheus import PrometheusSource
from tests.support.http import serving

SELECTORS = protocol.ArmSelectors('track="baseline"', 'track="candidate"', 'pod=~"py-.*"', 'pod=~"rs-.*"')
EMPTY = b'{"status":"success","data":{"resultType":"matrix","result":[]}}'
LAG = 10.0


class _SlowClock(BaseHTTPRequestHandler):
    behind: ClassVar[float] = 45.0
    ranges_asked: ClassVar[list[float]] = []

    def do_POST(self) -> None:  # the source POSTs its queries as a form
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(EMPTY)

    def date_time_string(self, timestamp: float | None = None) -> str:
        return formatdate(time.time() - _SlowClock.behind, usegmt=True)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def server() -> Iterator[str]:
    promclock.forget()
    with serving(_SlowClock) as where:
        yield where
    promclock.forget()


def _window(started_seconds_ago: float) -> protocol.Window:
    """What reconcile asks for: from the start to ``lag`` before now, by the operator's clock."""
    now = datetime.now(UTC)
    return protocol.Window(
        now - timedelta(seconds=started_seconds_ago), now - timedelta(seconds=LAG), 10.0, SELECTORS
    )


def test_a_block_still_filling_by_prometheus_clock_is_not_taken(server: str) -> None:
    _SlowClock.behind = 45.0
    source = PrometheusSource(f"http://{server}")
    # 105 s ago, lag 10 s: 9 blocks complete by our clock, 5 by Prometheus' (105 - 10 - 45 = 50 s).
    with pytest.raises(transport.BusyError, match="after its clock"):
        source.fetch(_window(105.0))
    assert len(source.fetch(_window(105.0)).blocks) == 5


def test_a_clock_that_catches_up_drops_the_correction(server: str) -> None:
    _SlowClock.behind = 45.0
    source = PrometheusSource(f"http://{server}")
    with pytest.raises(transport.BusyError):
        source.fetch(_window(105.0))
    _SlowClock.behind = 0.0
    source.fetch(_window(105.0))  # answered by a clock in step: the reading is renewed
    assert len(source.fetch(_window(105.0)).blocks) == 9


def test_a_clock_in_step_or_ahead_changes_nothing(server: str) -> None:
    for behind in (0.0, -30.0):
        _SlowClock.behind = behind
        assert len(PrometheusSource(f"http://{server}").fetch(_window(105.0)).blocks) == 9
