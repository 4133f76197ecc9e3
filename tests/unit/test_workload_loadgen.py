"""The benchmark's open-loop load generator: constant arrivals, latency from the intended send time.

Each test runs a small asyncio HTTP server on 127.0.0.1 inside the test's own event loop, with a
known service time, so the expected latencies follow from queueing arithmetic.
"""

from __future__ import annotations

import asyncio

from ferrocanary.bench import loadgen

REQUEST = loadgen.request_bytes("/v1/score", b'{"texts": ["a"]}')


class _TestServer(asyncio.Protocol):
    """One connection of a tiny HTTP/1.1 server: answers each request ``delay`` seconds after the
    previous answer (one request at a time, as the client sends them), or hangs up on reading one.

    A protocol rather than ``asyncio.start_server``: every accepted transport is known from the
    moment it exists, so the test closes all of them, even one accepted as the run ends.
    """

    def __init__(
        self, open_transports: set[asyncio.Transport], delay: float, status: int, close_after_read: bool
    ) -> None:
        self.open_transports = open_transports
        self.delay, self.status, self.close_after_read = delay, status, close_after_read
        self.buffer = bytearray()
        self.free_at = 0.0  # when the previous answer goes out: answers are serial per connection
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.open_transports.add(transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end])
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            assert self.transport is not None
            if self.close_after_read:
                self.transport.close()
                return
            loop = asyncio.get_running_loop()
            self.free_at = max(self.free_at, loop.time()) + self.delay
            loop.call_at(self.free_at, self._answer)

    def _answer(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 %d X\r\nContent-Length: 2\r\n\r\nok" % self.status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.open_transports.discard(self.transport)
        self.transport = None


def _run(
    delay: float,
    rate: float,
    duration: float,
    connections: int,
    *,
    status: int = 200,
    close_after_read: bool = False,
) -> loadgen.Outcome:
    async def main() -> loadgen.Outcome:
        loop = asyncio.get_running_loop()
        open_transports: set[asyncio.Transport] = set()
        srv = await loop.create_server(
            lambda: _TestServer(open_transports, delay, status, close_after_read), "127.0.0.1", 0
        )
        port = srv.sockets[0].getsockname()[1]
        try:
            return await loadgen.run_constant_rate(
                "127.0.0.1", port, [REQUEST], rate=rate, duration=duration, connections=connections, drain=10
            )
        finally:
            srv.close()
            for transport in list(open_transports):
                transport.close()
            await asyncio.sleep(0)  # their connection_lost callbacks
            await srv.wait_closed()

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
