"""The benchmark's open-loop load generator: constant arrivals, latency from the intended send time.

Each test runs a small asyncio HTTP server on 127.0.0.1 inside the test's own event loop, with a
known service time, so the expected latencies follow from queueing arithmetic.
"""

from __future__ import annotations

import asyncio

from ferrocanary.bench import loadgen

REQUEST = loadgen.request_bytes("/v1/score", b'{"texts": ["a"]}')


async def _serve(delay: float, status: int = 200, close_after_read: bool = False) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
                if close_after_read:
                    break
                await asyncio.sleep(delay)
                writer.write(b"HTTP/1.1 %d X\r\nContent-Length: 2\r\n\r\nok" % status)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _run(delay: float, rate: float, duration: float, connections: int, **server: object) -> loadgen.Outcome:
    async def main() -> loadgen.Outcome:
        srv = await _serve(delay, **server)  # type: ignore[arg-type]
        port = srv.sockets[0].getsockname()[1]
        try:
            return await loadgen.run_constant_rate(
                "127.0.0.1", port, [REQUEST], rate=rate, duration=duration, connections=connections, drain=10
            )
        finally:
            srv.close()

    return asyncio.run(main())


def test_latency_counts_from_the_intended_send_time() -> None:
    # 40 arrivals per second for 1 s into one connection that serves 20 per second: request i
    # waits for i - 20 * t_i earlier ones. A closed-loop client would report 50 ms for every
    # request; the open-loop truth is a median near 0.5 s and a worst case near 1 s.
    out = _run(delay=0.05, rate=40, duration=1.0, connections=1)
    assert (out.sent, out.ok, out.errors, out.failures) == (40, 40, 0, 0)
    assert 0.35 <= out.percentile_ms(50) / 1000 <= 0.7
    assert 0.85 <= out.percentile_ms(100) / 1000 <= 1.3
    assert out.elapsed >= 1.9  # the backlog drains at the server's pace


def test_a_fast_server_sees_the_requested_rate() -> None:
    out = _run(delay=0.0, rate=200, duration=1.0, connections=4)
    assert (out.sent, out.ok) == (200, 200)
    assert 180 <= out.achieved_rps <= 210
    assert out.percentile_ms(50) < 20
    assert out.max_dispatch_lag < 0.05


def test_error_statuses_and_dropped_connections_are_counted_not_hung() -> None:
    errors = _run(delay=0.0, rate=50, duration=0.4, connections=2, status=503)
    assert (errors.ok, errors.errors, errors.codes) == (0, 20, {503: 20})
    dropped = _run(delay=0.0, rate=50, duration=0.4, connections=2, close_after_read=True)
    assert dropped.ok == 0
    assert dropped.failures == 20
