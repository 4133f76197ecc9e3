"""The scheduler of looks: due-time order, events wake at once, finished canaries sleep, slow looks local.

Real threads and the real monotonic clock, with due times tens of milliseconds apart; every wait
has a generous timeout, so a loaded machine makes a test slower, never wrong.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from ferrocanary import scheduling

Work = Callable[[str], "float | None"]


class Recorder:
    """A work function that records which key was looked at, and when, and answers from a table."""

    def __init__(self, answers: dict[str, float | None] | None = None) -> None:
        self.answers = answers or {}
        self.looks: list[tuple[str, float]] = []
        self.changed = threading.Condition()

    def __call__(self, key: str) -> float | None:
        with self.changed:
            self.looks.append((key, time.monotonic()))
            self.changed.notify_all()
        return self.answers.get(key)

    def keys(self) -> list[str]:
        with self.changed:
            return [k for k, _ in self.looks]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[str]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.looks) >= count, timeout)
            return [k for k, _ in self.looks]


@pytest.fixture
def started() -> Iterator[list[scheduling.Scheduler[str]]]:
    made: list[scheduling.Scheduler[str]] = []
    yield made
    for scheduler in made:
        scheduler.stop()


def make(started: list[scheduling.Scheduler[str]], work: Work, workers: int = 1) -> scheduling.Scheduler[str]:
    scheduler: scheduling.Scheduler[str] = scheduling.Scheduler(work, workers=workers, retry_seconds=0.05)
    started.append(scheduler)
    return scheduler


def test_canaries_are_looked_at_in_the_order_they_fall_due(started: list[scheduling.Scheduler[str]]) -> None:
    work = Recorder()
    scheduler = make(started, work)
    scheduler.add("b", delay=0.2)
    scheduler.add("a", delay=0.1)
    scheduler.add("c", delay=0.3)
    scheduler.add("now")
    begun = time.monotonic()
    scheduler.start()
    assert work.wait_for(4) == ["now", "a", "b", "c"]
    at = dict(work.looks)
    assert at["a"] - begun >= 0.09  # not before it is due
    assert at["c"] - begun >= 0.29


def test_a_canary_is_looked_at_again_when_it_said_it_would_be_due(
    started: list[scheduling.Scheduler[str]],
) -> None:
    work = Recorder({"a": 0.1})
    scheduler = make(started, work)
    scheduler.add("a")
    scheduler.start()
    assert work.wait_for(3) == ["a", "a", "a"]
    times = [t for _, t in work.looks]
    assert all(later - earlier >= 0.09 for earlier, later in itertools.pairwise(times))


def test_a_watch_event_wakes_a_canary_at_once_however_far_its_next_look(
    started: list[scheduling.Scheduler[str]],
) -> None:
    work = Recorder({"a": 600.0})
    scheduler = make(started, work)
    scheduler.add("a")
    scheduler.start()
    assert work.wait_for(1) == ["a"]
    woken = time.monotonic()
    scheduler.wake("a")
    assert work.wait_for(2) == ["a", "a"]
    assert work.looks[1][1] - woken < 1.0
    assert scheduler.queued()["a"] - time.monotonic() > 500  # and then back to its own due time


def test_an_event_during_a_look_brings_another_look_right_after_it(
    started: list[scheduling.Scheduler[str]],
) -> None:
    inside, go_on = threading.Event(), threading.Event()
    looks: list[str] = []

    def work(key: str) -> float | None:
        looks.append(key)
        if len(looks) == 1:
            inside.set()
            go_on.wait(5)
        return 600.0

    scheduler = make(started, work, workers=2)
    scheduler.add("a")
    scheduler.start()
    assert inside.wait(5)
    scheduler.wake("a")  # the object changed while its look was running
    time.sleep(0.1)
    assert looks == ["a"]  # never two looks at one canary at once
    go_on.set()
    deadline = time.monotonic() + 5
    while len(looks) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert looks == ["a", "a"]


def test_a_finished_canary_is_never_woken_again(started: list[scheduling.Scheduler[str]]) -> None:
    work = Recorder({"done": None, "other": 0.05})
    scheduler = make(started, work)
    scheduler.add("done")
    scheduler.add("other")
    scheduler.start()
    work.wait_for(6)
    assert work.keys().count("done") == 1  # its look said nothing is due: it is not queued
    assert "done" not in scheduler.queued()
    scheduler.forget("done")  # kopf stopped its daemon (finished, deleted, or this replica paused)
    scheduler.wake("done")  # a late watch event of a canary we no longer own
    seen = len(work.keys())
    work.wait_for(seen + 4)
    assert work.keys().count("done") == 1


def test_a_slow_look_does_not_delay_another_canarys_due_look(
    started: list[scheduling.Scheduler[str]],
) -> None:
    release = threading.Event()
    looks: list[tuple[str, float]] = []

    def work(key: str) -> float | None:
        looks.append((key, time.monotonic()))
        if key == "slow":
            release.wait(5)  # a Prometheus that takes its time
        return None

    scheduler = make(started, work, workers=2)
    scheduler.add("slow")
    scheduler.add("due", delay=0.1)
    begun = time.monotonic()
    scheduler.start()
    deadline = time.monotonic() + 5
    while len(looks) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    assert [k for k, _ in looks] == ["slow", "due"]
    assert looks[1][1] - begun < 1.0  # taken when due, while the slow one was still running


def test_a_look_that_fails_is_retried_and_the_worker_keeps_serving(
    started: list[scheduling.Scheduler[str]],
) -> None:
    looks: list[str] = []

    def work(key: str) -> float | None:
        looks.append(key)
        if key == "bad" and looks.count("bad") == 1:
            raise RuntimeError("the API server is unavailable")
        return None

    scheduler = make(started, work)
    scheduler.add("bad")
    scheduler.add("good", delay=0.01)
    scheduler.start()
    deadline = time.monotonic() + 5
    while looks.count("bad") < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert looks == ["bad", "good", "bad"]  # retried after retry_seconds; the other served meanwhile


def test_stop_lets_the_look_in_flight_finish_and_starts_no_more(
    started: list[scheduling.Scheduler[str]],
) -> None:
    work = Recorder({"a": 0.0})
    scheduler = make(started, work)
    scheduler.add("a")
    scheduler.start()
    work.wait_for(2)
    scheduler.stop()
    count = len(work.keys())
    time.sleep(0.1)
    assert len(work.keys()) == count
