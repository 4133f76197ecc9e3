"""When each RustCanary is looked at next: one priority queue of due times, served by a pool of threads.

A canary costs nothing while nothing about it is due: it sits in the queue under its next due time
(its next block complete, a retry a couple of seconds away, or "now" after a watch event), and a
worker takes it when that time comes, the most overdue first. A canary is never looked at by two
workers at once; an event that arrives during its look makes the worker look again right after.
One slow look ties up one worker, not the queue: the others keep serving whatever is due. A canary
that is not "owned" (finished, deleted, or this replica paused by its peers) is never woken.

No kopf and no Kubernetes here: the handlers say which canaries this process owns (``add`` and
``forget``), wake them on watch events (``wake``), and give the work function, which looks at one
canary and returns how many seconds until it wants the next look (None: not until an event).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
# The work: look at one canary; seconds until its next look, or None (nothing due until an event).
Work = Callable[[K], "float | None"]


class Scheduler(Generic[K]):
    """Due times per key, served by ``workers`` threads (see the module docstring)."""

    def __init__(
        self,
        work: Work[K],
        *,
        workers: int,
        retry_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        name: str = "look",
    ) -> None:
        self._work = work
        self._workers = max(1, workers)
        self._retry = retry_seconds
        self._clock = clock
        self._name = name
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, K]] = []
        self._seq = itertools.count()
        self._due: dict[K, float] = {}  # the one live due time per queued key (older heap entries are stale)
        self._owned: set[K] = set()
        self._running: set[K] = set()
        self._again: dict[K, float] = {}  # woken while running: look again at this time at the latest
        self._threads: list[threading.Thread] = []
        self._stopping = False

    # --- what the handlers call -------------------------------------------------------------------

    def add(self, key: K, delay: float = 0.0) -> None:
        """This process now owns ``key`` (a live canary, this replica active): look at it now (or soon)."""
        with self._cond:
            self._owned.add(key)
        self.wake(key, delay)

    def forget(self, key: K) -> None:
        """No more looks at ``key`` (finished, deleted, or handed to another replica)."""
        with self._cond:
            self._owned.discard(key)
            self._due.pop(key, None)
            self._again.pop(key, None)

    def wake(self, key: K, delay: float = 0.0) -> None:
        """Look at ``key`` within ``delay`` seconds (sooner if it is already due sooner); owned keys only."""
        with self._cond:
            self._schedule(key, self._clock() + max(0.0, delay))

    def owned(self) -> int:
        with self._cond:
            return len(self._owned)

    def queued(self) -> dict[K, float]:
        """Each queued key's due time (the scheduler's clock), for tests and diagnostics."""
        with self._cond:
            return dict(self._due)

    def start(self) -> None:
        with self._cond:
            self._stopping = False
            missing = self._workers - len(self._threads)
        for i in range(missing):
            thread = threading.Thread(target=self._serve, name=f"{self._name}-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Let the workers finish the looks in flight, start no more, and return."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]

    # --- inside ----------------------------------------------------------------------------------

    def _schedule(self, key: K, at: float) -> None:
        """Queue ``key`` at ``at`` unless it is queued sooner; a running key is redone after its look."""
        if key not in self._owned:
            return
        if key in self._running:
            self._again[key] = min(at, self._again.get(key, at))
            return
        current = self._due.get(key)
        if current is not None and current <= at:
            return
        self._due[key] = at
        heapq.heappush(self._heap, (at, next(self._seq), key))
        self._cond.notify()

    def _take(self) -> K | None:
        """The most overdue queued key once it is due (None: stopping); marks it running."""
        with self._cond:
            while not self._stopping:
                while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
                    heapq.heappop(self._heap)  # stale: re-queued sooner, forgotten, or taken
                if not self._heap:
                    self._cond.wait()
                    continue
                at, _, key = self._heap[0]
                wait = at - self._clock()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                del self._due[key]
                self._running.add(key)
                return key
            return None

    def _serve(self) -> None:
        while True:
            key = self._take()
            if key is None:
                return
            try:
                delay = self._work(key)
            except Exception:  # one canary's failure must not stop the worker: retry it later
                log.exception("look at %s failed; retrying in %gs", key, self._retry)
                delay = self._retry
            self._done(key, delay)

    def _done(self, key: K, delay: float | None) -> None:
        with self._cond:
            self._running.discard(key)
            again = self._again.pop(key, None)
            wanted = None if delay is None else self._clock() + max(0.0, delay)
            if again is not None:
                wanted = again if wanted is None else min(wanted, again)
            if wanted is not None:
                self._schedule(key, wanted)
