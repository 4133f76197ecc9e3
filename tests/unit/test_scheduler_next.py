"""When a tick says the canary wants its next look (``TickResult.next_at``), and the handlers' queue.

A canary driven only at the times its own ticks ask for ends exactly as one ticked every few
seconds, with one tick per block and none in between; a finished canary asks for none; a canary
waiting on the world (Pending) asks again within seconds. The handlers' ``Looks`` wakes a canary on
a watch event unless the event is the operator's own status write coming back.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import kopf

from ferrocanary import reconcile
from ferrocanary.handlers import canary
from ferrocanary.policy import state
from tests.fakes.metrics import ModelSource
from tests.fakes.world import BASE, NAME, NS, PATH, World
from tests.support import arms


def terminal(status: dict[str, Any]) -> bool:
    return state.from_status(status).phase.terminal


def scheduled(world: World, max_ticks: int = 500) -> list[reconcile.TickResult]:
    """Tick only when the previous tick said the next one is due (the clock jumps there)."""
    results: list[reconcile.TickResult] = []
    for _ in range(max_ticks):
        result = reconcile.tick(world.obj, world.deps)
        results.append(result)
        if result.next_at is None:
            return results
        assert result.next_at >= world.now
        world.now = result.next_at
    raise AssertionError(f"still asking for looks after {max_ticks} ticks: {world.status}")


def test_a_canary_ticked_only_when_due_ends_as_one_ticked_every_five_seconds() -> None:
    polled = World(ModelSource(arms.PYTHON, arms.RUST_WIN))
    polled.run(terminal)
    world = World(ModelSource(arms.PYTHON, arms.RUST_WIN))
    results = scheduled(world)
    assert world.status["phase"] == polled.status["phase"] == "Promoted"
    assert world.replicas() == polled.replicas() == (0, 10)
    assert world.reasons() == polled.reasons()
    actions = [r.action for r in results]
    assert actions[0] is reconcile.TickAction.START
    # Every tick after the start judged a block (10 s each): no tick came early and found nothing due.
    assert set(actions[1:]) == {reconcile.TickAction.ANALYSIS}
    assert results[-1].next_at is None  # Promoted: nothing more until a watch event


def test_the_next_look_is_the_next_blocks_completion_plus_the_lag() -> None:
    world = World(ModelSource(arms.PYTHON, arms.RUST_WIN))
    world.kube.objects[PATH]["spec"]["analysis"]["prometheus"]["lag"] = "5s"
    started = world.now
    assert reconcile.tick(world.obj, world.deps).action is reconcile.TickAction.START
    world.now += timedelta(seconds=3)  # an event (say, a label edit) wakes it early
    early = reconcile.tick(world.obj, world.deps)
    assert early.action is reconcile.TickAction.IDLE
    assert early.next_at is not None
    assert early.next_at - started == timedelta(seconds=15.05)  # block of 10 s + 5 s lag (+ slack)
    world.now = early.next_at
    look = reconcile.tick(world.obj, world.deps)
    assert look.action is reconcile.TickAction.ANALYSIS
    assert look.next_at is not None
    assert look.next_at - started == timedelta(seconds=25.05)


def test_a_pending_canary_waiting_for_its_candidate_asks_again_within_seconds() -> None:
    world = World(ModelSource(arms.PYTHON, arms.RUST_WIN))
    world.kube.objects[BASE + "rs"]["status"] = {"replicas": 0}
    world.kube.objects[BASE + "rs"]["spec"]["replicas"] = 0
    world.kube.objects[PATH]["spec"]["trafficRouting"] = {"gatewayAPI": {"httpRoute": "scorer"}}
    result = reconcile.tick(world.obj, world.deps)
    assert state.from_status(world.status).phase.value in ("Pending", "")
    assert result.next_at is not None
    assert result.next_at - world.now == timedelta(seconds=reconcile.RETRY_SECONDS)


def test_a_watch_event_wakes_the_canary_unless_it_is_our_own_write_coming_back() -> None:
    world = World(ModelSource(arms.PYTHON, arms.RUST_WIN))
    memo = kopf.Memo(deps=world.deps)
    looks = canary.Looks(memo, workers=1)  # not started: only its queue is looked at
    key = (NS, NAME)
    looks.own(key, world.obj, canary.log)
    assert key in looks.scheduler.queued()
    delay = looks.look(key)
    looks.scheduler.forget(key)
    looks.scheduler.add(key, delay=600)  # queued far away, as after a look
    assert world.status["phase"] == "Progressing"
    assert delay is not None
    assert 0 < delay <= 10.05
    far = looks.scheduler.queued()[key]
    looks.seen(key, world.obj)  # the watch delivers our own status write: nothing to do
    assert looks.scheduler.queued()[key] == far
    edited = copy.deepcopy(world.obj)
    edited["metadata"]["resourceVersion"] = str(int(edited["metadata"]["resourceVersion"]) + 1)
    edited["metadata"]["annotations"] = {"ferrocanary.io/action": "pause"}
    looks.seen(key, edited)  # someone else's change: look at once
    assert looks.scheduler.queued()[key] < far
