"""The fault proxy of ``bench faults`` against a real loopback HTTP server: each mode answers as the
benchmark's docs say (the integration slice relies on it to mean what its counters claim); and the
command refuses an unknown scenario before it starts a sandbox."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from ferrocanary.cli import main
from ferrocanary.local import faults, processes
from ferrocanary.local.faultproxy import FaultProxy, Mode
from tests.support.http import serving


class _Upstream(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        sent = self.rfile.read(length).decode()
        data = json.dumps({"method": self.command, "path": self.path, "body": sent}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer()

    def do_PATCH(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    with serving(_Upstream) as address:
        started = FaultProxy(f"http://{address}", processes.free_port(), slow_seconds=0.2, huge_bytes=2**21)
        started.start()
        try:
            yield started
        finally:
            started.stop()


def _call(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_pass_and_slow_forward_method_path_and_body(proxy: FaultProxy) -> None:
    status, _, body = _call(f"{proxy.url}/api/v1/query_range?query=up", "PATCH", b'{"a":1}')
    assert status == 200
    assert json.loads(body) == {"method": "PATCH", "path": "/api/v1/query_range?query=up", "body": '{"a":1}'}
    proxy.mode = Mode.SLOW
    assert _call(f"{proxy.url}/x")[0] == 200
    assert (proxy.requests, proxy.faulted) == (2, 1)


def test_down_and_garbage_answer_in_place_of_the_upstream(proxy: FaultProxy) -> None:
    proxy.mode = Mode.DOWN
    assert _call(f"{proxy.url}/api/v1/query")[0] == 503
    proxy.mode = Mode.GARBAGE
    bodies = [_call(f"{proxy.url}/api/v1/query")[2] for _ in range(4)]
    assert bodies[0].startswith(b"<html>")
    assert json.loads(bodies[1]) == {"status": "success"}  # no data
    assert b"not-a-number" in bodies[2]
    with pytest.raises(json.JSONDecodeError, match="Expecting"):  # truncated
        json.loads(bodies[3])


def test_huge_streams_the_size_it_was_given(proxy: FaultProxy) -> None:
    proxy.mode = Mode.HUGE
    status, _, body = _call(f"{proxy.url}/api/v1/query_range")
    assert status == 200
    assert len(body) >= 2**21 - 2**20
    assert json.loads(body)["status"] == "success"


def test_conflicts_hit_only_writes_and_throttling_says_when_to_retry(proxy: FaultProxy) -> None:
    proxy.mode = Mode.CONFLICT
    assert _call(f"{proxy.url}/apis/x")[0] == 200  # fraction 1.0, but a read never conflicts
    status, _, body = _call(f"{proxy.url}/apis/x", "PATCH", b"{}")
    assert (status, json.loads(body)["reason"]) == (409, "Conflict")
    proxy.mode = Mode.THROTTLE
    status, headers, body = _call(f"{proxy.url}/apis/x")
    assert (status, headers.get("Retry-After"), json.loads(body)["code"]) == (429, "1", 429)


def test_bench_faults_refuses_an_unknown_scenario_before_starting_anything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main.main(["bench", "faults", "--scenario", "prometheus-sideways", "--json"]) == 2
    err = capsys.readouterr().err
    assert "unknown scenario(s) prometheus-sideways" in err
    assert all(name in err for name in faults.SCENARIOS)
    assert main.main(["bench", "faults", "--canaries", "0"]) == 2
