"""Fetch slots per Prometheus go to the most overdue look first, and a look never waits unbounded.

At 1,000 canaries a look that found every slot taken used to give up and try again on its next
tick, with no order: a canary could lose again and again while newer looks were served, which is
the long tail of the judgement lag. These tests hold the slots with threads and check who gets
them next.
"""

from __future__ import annotations

import threading
import time

import pytest

from ferrocanary.metrics import transport


@pytest.fixture
def two_slots(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh Prometheus address with two fetch slots (and so room for two waiters)."""
    monkeypatch.setenv("FERROCANARY_PROMETHEUS_CONCURRENCY", "2")
    return f"http://fair-{time.monotonic_ns()}.invalid:9090"


class Holder:
    """A thread holding one slot of ``where`` until released."""

    def __init__(self, where: str) -> None:
        self.entered, self.leave = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold, args=(where,))
        self.thread.start()
        assert self.entered.wait(5)

    def _hold(self, where: str) -> None:
        with transport.slot(where, due=0.0):
            self.entered.set()
            self.leave.wait(10)

    def release(self) -> None:
        self.leave.set()
        self.thread.join(5)


def _waiter(where: str, due: float, served: list[float], refused: list[float]) -> threading.Thread:
    def look() -> None:
        try:
            with transport.slot(where, due=due):
                served.append(due)
                time.sleep(0.05)
        except transport.BusyError:
            refused.append(due)

    thread = threading.Thread(target=look)
    thread.start()
    return thread


def _waiting(where: str, count: int) -> None:
    gate = transport._gate(where)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with gate.changed:
            if len(gate.waiting) == count:
                return
        time.sleep(0.01)
    raise AssertionError(f"expected {count} waiters")


def test_a_freed_slot_goes_to_the_most_overdue_look_not_the_first_to_ask(two_slots: str) -> None:
    holders = [Holder(two_slots), Holder(two_slots)]
    served: list[float] = []
    refused: list[float] = []
    late = _waiter(two_slots, 300.0, served, refused)
    _waiting(two_slots, 1)
    early = _waiter(two_slots, 100.0, served, refused)
    _waiting(two_slots, 2)
    holders[0].release()
    early.join(5)
    holders[1].release()
    late.join(5)
    assert served == [100.0, 300.0]  # the look due first went first, though it asked second
    assert refused == []


def test_a_full_waiting_room_refuses_less_overdue_looks_and_bumps_for_more_overdue_ones(
    two_slots: str,
) -> None:
    holders = [Holder(two_slots), Holder(two_slots)]
    served: list[float] = []
    refused: list[float] = []
    waiting = [_waiter(two_slots, due, served, refused) for due in (200.0, 300.0)]
    _waiting(two_slots, 2)
    newer = _waiter(two_slots, 400.0, served, refused)  # less overdue than both: refused at once
    newer.join(5)
    assert refused == [400.0]
    older = _waiter(two_slots, 100.0, served, refused)  # more overdue: takes the place of 300
    waiting[1].join(5)
    assert refused == [400.0, 300.0]
    for holder in holders:
        holder.release()
    older.join(5)
    waiting[0].join(5)
    assert served == [100.0, 200.0]


def test_a_waiter_gives_up_after_the_slot_wait(two_slots: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "SLOT_WAIT", 0.2)
    holders = [Holder(two_slots), Holder(two_slots)]
    try:
        began = time.monotonic()
        with pytest.raises(transport.BusyError, match="busy"), transport.slot(two_slots, due=1.0):
            pass
        assert time.monotonic() - began < 2
        assert transport._gate(two_slots).waiting == []
        with transport.slot("http://other.invalid:9090"):  # another Prometheus is not affected
            pass
    finally:
        for holder in holders:
            holder.release()
