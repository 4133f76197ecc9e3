"""Wait for what can be observed instead of sleeping a fixed time: poll a probe until its value holds,
with a deadline and a failure that says what was awaited and what was last seen; or, for "nothing
changes", watch a value until a moment and fail at the first change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T],
    timeout: float,
    what: str,
    *,
    until: Callable[[T], object] = bool,
    describe: Callable[[T], object] = repr,
    interval: float = 0.5,
) -> T:
    """Call ``probe`` every ``interval`` seconds until ``until(value)`` holds and return that value.

    Fails with an AssertionError naming ``what`` and ``describe(last value)`` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if until(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s; last seen {describe(value)}")
        time.sleep(interval)


def unchanged_until(moment: datetime, probe: Callable[[], T], what: str, *, interval: float = 0.5) -> T:
    """Watch ``probe`` until the wall-clock ``moment`` and return its value, failing at the first change.

    For what must not happen while nobody acts: the moment is when it would have happened, computed from
    what the system reported, not a guess.
    """
    first = probe()
    while True:
        left = (moment - datetime.now(UTC)).total_seconds()
        if left <= 0:
            return first
        time.sleep(min(interval, left))
        now = probe()
        if now != first:
            raise AssertionError(f"{what}: changed before {moment:%H:%M:%S}: {first!r} -> {now!r}")
