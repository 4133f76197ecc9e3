"""How the operator talks to Prometheus: one deadline per fetch, bounded answers, bounded concurrency.

``RangeClient.custom_query_range`` answers ``/api/v1/query_range`` like prometheus-api-client's method
of the same name (the seam the unit tests replace), with four limits the library cannot give. The
query is POSTed as a form (Prometheus' API takes either), which costs the operator far less CPU than
a long query in a URL.

- **One deadline for a whole fetch** (``spec.analysis.prometheus.timeout``), not per socket read: the
  answer is read in chunks and the fetch gives up when the deadline passes, however slowly a server
  trickles bytes.
- **Bounded answers**: more than ``MAX_ANSWER_BYTES`` or ``MAX_SERIES`` series in one answer is
  refused (the canary holds with a reason that says to narrow its selectors), so a selector that
  matches half the cluster cannot exhaust the operator's memory. A range longer than Prometheus'
  11,000 points per series is cut into several requests.
- **Retry-After, capped**: a 429 or 503 with ``Retry-After`` of at most ``RETRY_AFTER_CAP`` seconds
  (and within the deadline) is slept on and retried once; a longer one is not slept on (a tick must
  report within seconds) but is honoured: until it passes, fetches from this operator to that
  address hold at once without sending anything (at most ``RETRY_AFTER_MAX`` seconds).
- **Bounded, fair concurrency per Prometheus**: at most ``FERROCANARY_PROMETHEUS_CONCURRENCY``
  (default 8) requests are in flight to one address at a time (from sending the query to the last
  byte of its answer; decoding it is the operator's own work and holds no slot), and as many more
  may wait for a slot. Connections are kept alive between looks (one session per worker thread). Slots
  go to the most overdue look first (the earliest moment its newest block became complete), not to
  whichever thread asks at the right moment: a look less overdue than every waiter raises
  ``BusyError`` at once (retried on the next tick) and a more overdue one takes the place of the
  least overdue waiter, which gets ``BusyError``. So no canary loses again and again while newer
  looks are served (which gave the long tail of the judgement lag at 1,000 canaries), one slow
  Prometheus ties up at most twice that many of the operator's workers, and canaries reading
  another one are never delayed. A waiter gives up after ``SLOT_WAIT`` seconds.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import json
import math
import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from ferrocanary.metrics import promclock, protocol

MAX_ANSWER_BYTES = 32 * 1024 * 1024
MAX_SERIES = 5000
MAX_POINTS = 10_000  # Prometheus refuses more than 11,000 points per series in one query_range
RETRY_AFTER_CAP = 2.0
RETRY_AFTER_MAX = 300.0
SLOT_WAIT = 5.0
_CHUNK = 64 * 1024


class BusyError(protocol.MetricsUnavailableError):
    """Every fetch slot for this Prometheus is taken: try again on the next tick (no hold recorded)."""


class ClockBehindError(BusyError):
    """The range asked for ends in Prometheus' future (its clock is behind ours): retry next tick."""


class DeadlineExceededError(protocol.MetricsUnavailableError):
    """The fetch as a whole took longer than its deadline."""


class Deadline:
    """The end of one fetch on the monotonic clock."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds

    def left(self) -> float:
        return self.ends - time.monotonic()


# --- per-address state shared by every fetch in the process ---------------------------------------

_lock = threading.Lock()
_gates: dict[str, _Gate] = {}
_not_before: dict[str, float] = {}
_order = itertools.count()  # ties in due time go first come, first served


def concurrency() -> int:
    # 8: at 1,000 canaries in 1-minute blocks, 4 requests in flight at a time capped the looks at about
    # 8 a second on a loaded machine (judgement lag median 47 s); 8 halved the lag (docs/scale.md),
    # well inside Prometheus' own 20 concurrent queries.
    return max(1, int(os.environ.get("FERROCANARY_PROMETHEUS_CONCURRENCY", "8") or 8))


class _Waiter:
    """One look waiting for a slot; ``bumped`` when a more overdue look took its place."""

    __slots__ = ("bumped", "key")

    def __init__(self, due: float) -> None:
        self.key = (due, next(_order))
        self.bumped = False

    def __lt__(self, other: _Waiter) -> bool:
        return self.key < other.key


class _Gate:
    """One address's fetch slots, given to the most overdue waiting look first (module docstring)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self.changed = threading.Condition(threading.Lock())
        self.waiting: list[_Waiter] = []  # sorted, most overdue first; at most ``size`` long

    def acquire(self, due: float, timeout: float) -> bool:
        with self.changed:
            if self.free > 0 and not self.waiting:
                self.free -= 1
                return True
            me = _Waiter(due)
            if len(self.waiting) >= self.size:
                if not me < self.waiting[-1]:
                    return False  # less overdue than every waiter: ask again on the next tick
                self.waiting.pop().bumped = True
                self.changed.notify_all()
            bisect.insort(self.waiting, me)
            return self._wait(me, time.monotonic() + timeout)

    def _wait(self, me: _Waiter, until: float) -> bool:
        while not me.bumped:
            if self.free > 0 and self.waiting[0] is me:
                self.waiting.pop(0)
                self.free -= 1
                self.changed.notify_all()  # the next waiter may have a slot too
                return True
            left = until - time.monotonic()
            if left <= 0:
                self.waiting.remove(me)
                self.changed.notify_all()
                return False
            self.changed.wait(left)
        return False

    def release(self) -> None:
        with self.changed:
            self.free += 1
            self.changed.notify_all()


def _gate(where: str) -> _Gate:
    with _lock:
        found = _gates.get(where)
        if found is None:
            found = _gates[where] = _Gate(concurrency())
        return found


@contextlib.contextmanager
def slot(where: str, due: float | None = None) -> Iterator[None]:
    """One of the address's fetch slots for the ``with`` block, or ``BusyError``.

    ``due``: when the look became due (epoch seconds; earlier goes first); None: now.
    """
    with _lock:
        waiting = _not_before.get(where, 0.0) - time.monotonic()
    if waiting > 0:
        raise protocol.MetricsUnavailableError(
            f"Prometheus at {where} asked to retry after {math.ceil(waiting)}s (Retry-After): holding"
        )
    gate = _gate(where)
    if not gate.acquire(time.time() if due is None else due, SLOT_WAIT):
        raise BusyError(
            f"Prometheus at {where}: all {gate.size} fetch slots busy with more overdue looks; "
            "retrying next tick"
        )
    try:
        yield
    finally:
        gate.release()


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


_sessions = threading.local()


def _session(address: str, verify_tls: bool) -> requests.Session:
    """This thread's session for an address: its connections are kept alive from one look to the
    next (a session per look opened a TCP connection to Prometheus per look and left it to the
    garbage collector). Per thread because a ``requests.Session`` is not documented as thread-safe;
    a worker thread runs one look at a time. Credentials are sent per request, never kept here."""
    found: dict[tuple[str, bool], requests.Session] | None = getattr(_sessions, "by_address", None)
    if found is None:
        found = _sessions.by_address = {}
    key = (address, verify_tls)
    session = found.get(key)
    if session is None:
        session = found[key] = requests.Session()
        session.verify = verify_tls
    return session


class RangeClient:
    """``query_range`` over ``requests`` with the limits in the module docstring; one per source."""

    def __init__(
        self, address: str, where: str, *, headers: dict[str, str] | None, verify_tls: bool, timeout: float
    ) -> None:
        self.address = address
        self.where = where
        self.timeout = timeout
        self.deadline = Deadline(timeout)
        self.bytes_read = 0
        self.queries = 0
        self._server_time: float | None = None  # Prometheus' clock, from the last answer's Date
        self._headers = dict(headers or {})
        self._verify_tls = verify_tls
        self._due: float | None = None

    def start(self, due: float | None = None) -> None:
        """A new fetch: a fresh deadline; ``due`` orders its requests for a slot (see ``slot``)."""
        self.deadline = Deadline(self.timeout)
        self._due = due

    def custom_query_range(
        self, query: str, start_time: datetime, end_time: datetime, step: str
    ) -> list[dict[str, Any]]:
        """Series of ``query`` from ``start_time`` to ``end_time`` (cut into pieces of MAX_POINTS)."""
        step_seconds = float(step.rstrip("s"))
        span = timedelta(seconds=step_seconds * (MAX_POINTS - 1))
        merged: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        first = start_time
        while first <= end_time:
            last = min(end_time, first + span)
            for series in self._get(query, first, last, step):
                key = tuple(sorted((series.get("metric") or {}).items()))
                found = merged.setdefault(key, {"metric": series.get("metric") or {}, "values": []})
                found["values"].extend(series["values"])
            first = last + timedelta(seconds=step_seconds)
        return list(merged.values())

    def _get(self, query: str, first: datetime, last: datetime, step: str) -> list[dict[str, Any]]:
        params = {"query": query, "start": first.timestamp(), "end": last.timestamp(), "step": step}
        for attempt in (1, 2):
            try:
                status, wait, body = self._send(params)
            except requests.exceptions.RequestException as exc:
                raise protocol.MetricsUnavailableError(
                    f"Prometheus at {self.where} unreachable: {type(exc).__name__}"
                ) from None
            if status == 200:
                self._in_the_past(last)
                return self._result(body)
            retryable = status in (429, 503) or (status in (502, 504) and wait is None)
            pause = 0.2 if wait is None else wait
            if attempt == 1 and retryable and pause <= min(RETRY_AFTER_CAP, self.deadline.left() - 0.5):
                time.sleep(pause)
                continue
            if wait is not None and wait > RETRY_AFTER_CAP:
                with _lock:
                    _not_before[self.where] = time.monotonic() + min(wait, RETRY_AFTER_MAX)
                raise protocol.MetricsUnavailableError(
                    f"Prometheus at {self.where} is overloaded (HTTP {status}) and asked to retry after "
                    f"{math.ceil(wait)}s; this operator holds its canaries on it until then "
                    f"(at most {RETRY_AFTER_MAX:g}s)"
                )
            raise protocol.MetricsUnavailableError(
                f"Prometheus at {self.where} refused a query (HTTP {status})"
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, params: dict[str, Any]) -> tuple[int, float | None, bytes]:
        """One request: (HTTP status, Retry-After in seconds or None, the body read within the limits)."""
        left = self.deadline.left()
        if left <= 0:
            raise DeadlineExceededError(
                f"Prometheus at {self.where} did not answer within {self.timeout:g}s "
                "(spec.analysis.prometheus.timeout, for the whole fetch)"
            )
        self.queries += 1
        url = f"{self.address}/api/v1/query_range"
        # POSTed as a form, as Prometheus' API allows: a look's query is several KiB, and in the URL of a
        # GET requests and urllib3 re-encoded it character by character in Python (about a third of
        # the operator's CPU per look at 1,000 canaries).
        # The slot is held while the request is at Prometheus and its bytes arrive, not while the
        # operator decodes and differences them: that work is the operator's CPU, not Prometheus'.
        session = _session(self.address, self._verify_tls)
        timeout = (min(left, 5.0), left)
        with (
            slot(self.where, self._due),
            session.post(url, data=params, headers=self._headers, timeout=timeout, stream=True) as response,
        ):
            self._server_time = promclock.observe(self.address, response.headers.get("Date"), time.time())
            wait = _retry_after(response.headers.get("Retry-After"))
            if response.status_code != 200:
                return response.status_code, wait, b""
            return 200, wait, self._read(response)

    def _in_the_past(self, last: datetime) -> None:
        """Refuse an answer whose last point is in Prometheus' future: that block is partial there."""
        ahead = promclock.in_future(self._server_time, last.timestamp())
        if ahead:
            raise ClockBehindError(
                f"Prometheus at {self.where}: the newest block ends {ahead:.0f}s after its clock (which is "
                "behind this operator's); the next look ends its window that much earlier"
            )

    def _read(self, response: requests.Response) -> bytes:
        """The whole body, within the deadline and the size limit."""
        chunks: list[bytes] = []
        size = 0
        raw = response.raw
        raw.decode_content = True
        while True:
            # read1: whatever has arrived (up to a chunk), so the deadline is checked as bytes trickle in.
            chunk = raw.read1(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise protocol.MetricsUnavailableError(
                    f"Prometheus at {self.where} answered with more than {MAX_ANSWER_BYTES // 2**20} MiB for "
                    "one query: narrow spec.analysis.selectors"
                )
            if self.deadline.left() <= 0:
                raise DeadlineExceededError(
                    f"Prometheus at {self.where} did not answer within {self.timeout:g}s "
                    "(spec.analysis.prometheus.timeout, for the whole fetch)"
                )
            chunks.append(chunk)
        self.bytes_read += size
        return b"".join(chunks)

    def _result(self, body: bytes) -> list[dict[str, Any]]:
        try:
            parsed = json.loads(body)
        except ValueError:
            raise protocol.MetricsUnavailableError(
                f"Prometheus at {self.where} sent an answer that could not be read (not JSON)"
            ) from None
        result: list[dict[str, Any]] = parsed["data"]["result"]
        if isinstance(result, list) and len(result) > MAX_SERIES:
            raise protocol.MetricsUnavailableError(
                f"Prometheus at {self.where} answered with {len(result)} series for one query "
                f"(at most {MAX_SERIES}): narrow spec.analysis.selectors"
            )
        return result
