"""An open-loop, constant-arrival-rate HTTP/1.1 load generator with coordinated-omission-correct latency.

Request i is due at ``start + i / rate`` whatever happened to earlier requests (open loop: a slow
server does not slow the arrivals down, so queueing shows). Its latency is measured from that
*intended* time, not from when a connection was free to send it, so time spent waiting behind a
stalled server counts (as wrk2 does). Requests go out over a fixed pool of keep-alive
connections; when every connection is busy, due requests wait in the client's queue with their
clock running. Latencies land in an HDR histogram (microseconds, 3 significant digits).

The client shares the machine with the server under test, so it is built on asyncio protocols
(no task, queue or timer per request) to keep its own CPU cost per request small.
Loopback only: the caller passes the port of a server it started itself on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

MAX_LATENCY_US = 120_000_000  # two minutes: anything slower is recorded at this ceiling


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, MAX_LATENCY_US, 3)


@dataclass
class Outcome:
    """What one constant-rate run measured."""

    rate: float
    duration: float
    sent: int = 0
    ok: int = 0
    errors: int = 0  # non-2xx answers
    failures: int = 0  # connection errors, or no answer by the drain deadline
    elapsed: float = 0.0  # from the first due time to the last response
    max_dispatch_lag: float = 0.0  # how late the client's scheduler itself woke, worst case (s)
    histogram: HdrHistogram = field(default_factory=new_histogram)
    codes: dict[int, int] = field(default_factory=dict)

    def percentile_ms(self, q: float) -> float:
        if self.histogram.get_total_count() == 0:
            return float("inf")
        return float(self.histogram.get_value_at_percentile(q)) / 1000.0

    @property
    def achieved_rps(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0


def request_bytes(path: str, body: bytes, host: str = "127.0.0.1") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.intended: float | None = None  # due time of the request in flight

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, intended: float, payload: bytes) -> None:
        assert self.transport is not None
        self.intended = intended
        self.transport.write(payload)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.intended is None:
            return
        head = bytes(self.buffer[:end])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(self.buffer) < end + 4 + length:
            return
        status = int(head[9:12])
        close = b"connection: close" in head.lower()
        del self.buffer[: end + 4 + length]
        intended, self.intended = self.intended, None
        self.pool.done(self, intended, status)
        if close and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        intended, self.intended = self.intended, None
        self.pool.lost(self, intended)


class _Pool:
    def __init__(self, host: str, port: int, requests: Sequence[bytes], outcome: Outcome) -> None:
        self.loop = asyncio.get_running_loop()
        self.host, self.port = host, port
        self.requests = requests
        self.outcome = outcome
        self.idle: list[_Connection] = []
        self.waiting: collections.deque[tuple[float, int]] = collections.deque()
        self.busy: set[_Connection] = set()
        self.last_done = 0.0
        self.finished = asyncio.Event()
        self.expected = 0
        self.closing = False
        self._replacing: set[asyncio.Task[None]] = set()

    async def connect(self, count: int) -> None:
        for _ in range(count):
            _transport, conn = await self.loop.create_connection(
                lambda: _Connection(self), self.host, self.port
            )
            self.idle.append(conn)

    def dispatch(self, intended: float, index: int) -> None:
        if self.idle:
            conn = self.idle.pop()
            self.busy.add(conn)
            conn.send(intended, self.requests[index % len(self.requests)])
        else:
            self.waiting.append((intended, index))

    def record(self, intended: float, now: float, status: int | None) -> None:
        out = self.outcome
        out.histogram.record_value(min(max(int((now - intended) * 1e6), 1), MAX_LATENCY_US))
        if status is None:
            out.failures += 1
        else:
            out.codes[status] = out.codes.get(status, 0) + 1
            if 200 <= status < 300:
                out.ok += 1
            else:
                out.errors += 1
        self.last_done = max(self.last_done, now)
        if out.ok + out.errors + out.failures >= self.expected:
            self.finished.set()

    def done(self, conn: _Connection, intended: float, status: int) -> None:
        self.record(intended, self.loop.time(), status)
        if self.waiting and conn.transport is not None:
            due, index = self.waiting.popleft()
            conn.send(due, self.requests[index % len(self.requests)])
        else:
            self.busy.discard(conn)
            self.idle.append(conn)

    def lost(self, conn: _Connection, intended: float | None) -> None:
        self.busy.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        if intended is not None:
            self.record(intended, self.loop.time(), None)
        if not self.closing:
            self._replacing.add(task := self.loop.create_task(self._replace()))
            task.add_done_callback(self._replacing.discard)

    async def _replace(self) -> None:
        try:
            _transport, conn = await self.loop.create_connection(
                lambda: _Connection(self), self.host, self.port
            )
        except OSError:
            # The server is gone: everything still waiting fails now (its latency so far counts).
            while self.waiting:
                self.record(self.waiting.popleft()[0], self.loop.time(), None)
            return
        if self.closing:
            # The run ended while this connection was being opened: nobody will close it later.
            if conn.transport is not None:
                conn.transport.close()
            return
        if self.waiting:
            due, index = self.waiting.popleft()
            self.busy.add(conn)
            conn.send(due, self.requests[index % len(self.requests)])
        else:
            self.idle.append(conn)

    async def close(self) -> None:
        self.closing = True
        for conn in [*self.idle, *self.busy]:
            if conn.transport is not None:
                conn.transport.close()
        # Replacements still connecting close their own connection once it opens (see _replace).
        # Waited for rather than cancelled: a task cancelled just after its connect succeeded
        # would drop the new transport unclosed.
        if self._replacing:
            await asyncio.wait(self._replacing)


async def run_constant_rate(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    rate: float,
    duration: float,
    connections: int = 32,
    drain: float = 30.0,
) -> Outcome:
    """Sends ``rate * duration`` requests at a constant rate, cycling through ``requests``."""
    if rate <= 0 or duration <= 0 or not requests or connections < 1:
        raise ValueError("rate, duration, connections and requests must be positive/non-empty")
    outcome = Outcome(rate=rate, duration=duration)
    pool = _Pool(host, port, requests, outcome)
    await pool.connect(connections)
    loop = pool.loop
    count = max(1, round(rate * duration))
    pool.expected = count
    start = loop.time() + 0.01
    try:
        for i in range(count):
            due = start + i / rate
            now = loop.time()
            # The event loop's timers fire up to a millisecond late (epoll's resolution), which
            # would count as server latency: let the loop sleep to within a millisecond, then
            # block for the rest (nanosleep is precise; a response landing meanwhile waits <1 ms).
            if due - now > 0.001:
                await asyncio.sleep(due - now - 0.001)
                now = loop.time()
            if due > now:
                time.sleep(due - now)
                now = loop.time()
            outcome.max_dispatch_lag = max(outcome.max_dispatch_lag, now - due)
            pool.dispatch(due, i)
            outcome.sent += 1
        try:
            await asyncio.wait_for(pool.finished.wait(), drain)
        except TimeoutError:
            # Unanswered by the deadline: failures, at the latency they had reached.
            now = loop.time()
            for conn in pool.busy:
                if conn.intended is not None:
                    pool.record(conn.intended, now, None)
                    conn.intended = None
            while pool.waiting:
                pool.record(pool.waiting.popleft()[0], now, None)
    finally:
        await pool.close()
    outcome.elapsed = max(pool.last_done, start + count / rate) - start
    return outcome
