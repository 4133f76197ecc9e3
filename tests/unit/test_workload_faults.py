"""textscore's injected faults, each checked for the effect an operator would see.

Every test starts its own server process on loopback (faults are per process) and stops it by pid.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from textscore import faults, pyscore

from ferrocanary.bench import corpus, servers

BODY = corpus.bodies(count=1, batch=16)[0]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[object]:
    started: list[servers.Server] = []

    def _start(build: str, **env: str) -> servers.Server:
        server = servers.start(build, tmp_path / f"{build}-{len(started)}.log", env)
        started.append(server)
        return server

    yield _start
    for server in started:
        servers.stop(server)


def post(server: servers.Server, body: bytes = BODY) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("POST", "/v1/score", body=body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def panics_total(server: servers.Server) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    (line,) = [row for row in text.splitlines() if row.startswith("panics_total ")]
    return float(line.split()[1])


def test_panic_fault_answers_500_counts_panics_and_keeps_serving(start) -> None:  # type: ignore[no-untyped-def]
    server = start("rust", TEXTSCORE_FAULT="panic", TEXTSCORE_FAULT_PANIC_RATE="0.5")
    statuses = [post(server)[0] for _ in range(40)]
    failed = statuses.count(500)
    # Which calls panic is a fixed, well-spread function of the call number: at rate 0.5 over 40
    # calls both outcomes occur (it would take 40 identical draws for either bound to fail).
    assert 0 < failed < 40
    assert statuses.count(200) == 40 - failed
    assert panics_total(server) == failed
    status, body = post(server, b'{"texts": ["still fine?"]}')
    assert status in (200, 500)
    if status == 200:
        assert json.loads(body)["scores"][0] == pytest.approx(pyscore.score_text("still fine?"), abs=1e-9)
    assert server.process.poll() is None


@pytest.mark.parametrize(("signal_name", "returncode"), [("segv", -11), ("abort", -6)])
def test_crash_fault_kills_the_process_on_the_nth_request(start, signal_name: str, returncode: int) -> None:  # type: ignore[no-untyped-def]
    server = start(
        "rust",
        TEXTSCORE_FAULT="crash",
        TEXTSCORE_FAULT_CRASH_AFTER="3",
        TEXTSCORE_FAULT_CRASH_SIGNAL=signal_name,
    )
    assert post(server)[0] == 200
    assert post(server)[0] == 200
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        post(server)
    assert server.process.wait(10) == returncode


def test_leak_fault_grows_resident_memory(start) -> None:  # type: ignore[no-untyped-def]
    server = start("rust", TEXTSCORE_FAULT="leak", TEXTSCORE_FAULT_LEAK_KIB="16384")
    post(server)
    before = servers.memory_bytes(server.pid, "VmRSS")
    for _ in range(8):
        assert post(server)[0] == 200
    grown = servers.memory_bytes(server.pid, "VmRSS") - before
    assert grown >= 8 * 16 * 2**20 * 0.9, grown


def _median_latency(server: servers.Server, count: int = 7) -> float:
    post(server)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        assert post(server)[0] == 200
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def test_slow_fault_loses_the_rust_latency_edge(start) -> None:  # type: ignore[no-untyped-def]
    python = _median_latency(start("python"))
    fast = _median_latency(start("rust"))
    slow = _median_latency(start("rust", TEXTSCORE_FAULT="slow"))
    features = sum(len(pyscore.feature_hashes(t)) for t in json.loads(BODY)["texts"])
    assert slow >= features * faults.FaultConfig().slow_ns_per_feature * 1e-9  # the spin alone
    assert slow > 5 * fast
    # The KPI the fault exists to break: the Rust build must be at most 0.6x the Python latency.
    assert slow / python > 0.6, (slow, python)


def test_a_slow_rate_slows_only_that_fraction_of_requests(start) -> None:  # type: ignore[no-untyped-def]
    # 10% of 60 requests slowed by >= 20 ms each: the median stays fast, the slowest tenth is slow.
    features = sum(len(pyscore.feature_hashes(t)) for t in json.loads(BODY)["texts"])
    ns = int(0.02e9 / features) + 1
    server = start("rust", TEXTSCORE_FAULT="slow", TEXTSCORE_FAULT_SLOW_RATE="0.1",
                   TEXTSCORE_FAULT_SLOW_NS_PER_FEATURE=str(ns))  # fmt: skip
    times = []
    for _ in range(60):
        started = time.perf_counter()
        assert post(server)[0] == 200
        times.append(time.perf_counter() - started)
    slowed = sum(t >= 0.02 for t in times)
    assert 1 <= slowed <= 15, slowed  # 6 expected; binomial(60, 0.1) lies in 1..15 with p > 0.999
    assert statistics.median(times) < 0.01


def test_a_slow_rate_outside_0_1_is_refused() -> None:
    with pytest.raises(faults.FaultConfigError, match=r"TEXTSCORE_FAULT_SLOW_RATE=1\.5 is outside"):
        faults.from_env({"TEXTSCORE_FAULT": "slow", "TEXTSCORE_FAULT_SLOW_RATE": "1.5"})


def _run_server(env: dict[str, str], build: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("TEXTSCORE_")} | env
    return subprocess.run(
        [sys.executable, "-m", "textscore", "--build", build, "--port", "0"],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "build", "message"),
    [
        ({"TEXTSCORE_FAULT": "crash"}, "python", "rust build only"),
        ({"TEXTSCORE_FAULT": "explode"}, "rust", "expected one of"),
        ({"TEXTSCORE_FAULT": "panic", "TEXTSCORE_FAULT_PANIC_RATE": "2"}, "rust", "outside"),
        ({"TEXTSCORE_FAULT": "crash", "TEXTSCORE_FAULT_CRASH_SIGNAL": "kill"}, "rust", "segv or abort"),
    ],
)
def test_misconfigured_faults_refuse_to_start(env: dict[str, str], build: str, message: str) -> None:
    result = _run_server(env, build)
    assert result.returncode == 2
    assert message in result.stderr
