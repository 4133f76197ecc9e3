"""Two canaries on one Deployment never both run, and a start costs no LIST of its namespace.

The order rule (policy/claims.py) on its own, then a Pending canary's start as the operator runs it:
from its watch's view of the namespace (kopf's index), with the canary that view names read fresh
before the start waits on it. The view here is built from the same in-memory API the tick talks to.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from ferrocanary import reconcile
from ferrocanary.handlers import canary
from ferrocanary.kube import canaries
from ferrocanary.policy import claims
from ferrocanary.policy.state import Phase
from tests.fakes.metrics import ModelSource
from tests.fakes.world import NS, PATH, World
from tests.support import arms

PY = ("Deployment", "py")


def _claimant(name: str, created: str, phase: Phase, *objects: tuple[str, str]) -> claims.Claimant:
    return claims.Claimant(name, (created, name), phase, frozenset(objects))


def test_a_start_waits_for_a_running_canary_or_an_older_pending_one_on_a_shared_object() -> None:
    me = ("2025-03-01T08:05:00Z", "me")
    wanted = frozenset({PY, ("Deployment", "rs")})
    running_younger = _claimant("b", "2025-03-01T09:00:00Z", Phase.PROGRESSING, PY)
    pending_older = _claimant("a", "2025-03-01T08:00:00Z", Phase.PENDING, PY)
    pending_younger = _claimant("c", "2025-03-01T09:00:00Z", Phase.PENDING, PY)
    finished = _claimant("d", "2025-03-01T07:00:00Z", Phase.ROLLED_BACK, PY)
    elsewhere = _claimant("e", "2025-03-01T07:00:00Z", Phase.PROGRESSING, ("Deployment", "other"))
    refused = _claimant("f", "2025-03-01T07:00:00Z", Phase.PROGRESSING)  # routing it cannot read: none

    assert claims.blocker("me", me, wanted, [running_younger]) == (running_younger, PY)
    assert claims.blocker("me", me, wanted, [pending_older]) == (pending_older, PY)
    for free in (pending_younger, finished, elsewhere, refused):
        assert claims.blocker("me", me, wanted, [free]) is None, free
    # a canary never waits for itself, even when its own entry is in the view
    assert claims.blocker("me", me, wanted, [_claimant("me", me[0], Phase.PENDING, PY)]) is None


def test_a_claimant_reads_routing_only_and_a_spec_it_cannot_read_claims_nothing() -> None:
    world = World(ModelSource(arms.PYTHON, arms.RUST_WIN))
    found = claims.claimant(world.obj)
    assert found.name == "scorer"
    assert found.phase is Phase.PENDING
    assert PY in found.objects
    broken = {**world.obj, "spec": {"baseline": "py"}}  # not an object: this canary never moves traffic
    assert claims.claimant(broken).objects == frozenset()


class CountingKube:
    """The world's API, counting collection reads (a LIST) and object reads (a GET) of canaries."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.lists = 0
        self.gets: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.world.kube, name)

    def get(self, path: str) -> dict[str, Any]:
        if path == canaries.path(NS):
            self.lists += 1
        elif path.startswith(canaries.path(NS) + "/"):
            self.gets.append(path.rsplit("/", 1)[1])
        return self.world.kube.get(path)


def _second_canary(world: World) -> str:
    world.kube.objects[PATH]["metadata"]["creationTimestamp"] = "2025-03-01T08:00:00Z"
    second = canaries.path(NS, "scorer-again")
    meta = {"name": "scorer-again", "namespace": NS, "uid": "u2", "creationTimestamp": "2025-03-01T08:05:00Z"}
    world.kube.add(second, {**world.obj, "metadata": meta})
    return second


def _with_view(world: World, view: list[claims.Claimant]) -> CountingKube:
    counting = CountingKube(world)
    world.deps = reconcile.Deps(
        api=counting,
        sources=lambda ns, sp: world.source,
        clock=lambda: world.now,
        claimants=lambda namespace: list(view) if namespace == NS else [],
    )
    return counting


def _tick(world: World, path: str) -> dict[str, Any]:
    return reconcile.tick(copy.deepcopy(world.kube.objects[path]), world.deps).status


def _routed(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status.get("conditions", []) if c["type"] == "TrafficRouted")


def test_a_start_reads_the_watch_view_and_the_canary_it_names_never_the_namespace() -> None:
    world = World(ModelSource(arms.PYTHON, arms.RUST_WIN))
    second = _second_canary(world)
    view = [claims.claimant(o) for o in (world.kube.objects[PATH], world.kube.objects[second])]
    counting = _with_view(world, view)

    waiting = _tick(world, second)
    assert waiting.get("phase", "Pending") == "Pending"
    assert _routed(waiting)["reason"] == "ClaimedByAnother"
    assert "Deployment shop/py is used by RustCanary shop/scorer (Pending)" in _routed(waiting)["message"]
    assert counting.lists == 0
    assert counting.gets == ["scorer"]  # the one canary the view named, read fresh

    assert _tick(world, PATH)["phase"] == "Progressing"  # the older one starts: nothing blocks it
    assert counting.lists == 0


def test_a_canary_the_view_still_holds_after_its_deletion_does_not_block_a_start() -> None:
    world = World(ModelSource(arms.PYTHON, arms.RUST_WIN))
    ghost = _claimant("deleted-while-the-watch-was-down", "2025-01-01T00:00:00Z", Phase.PROGRESSING, PY)
    counting = _with_view(world, [ghost])
    assert _tick(world, PATH)["phase"] == "Progressing"
    assert counting.gets == ["deleted-while-the-watch-was-down"]


def test_a_canary_that_finished_since_the_view_saw_it_does_not_block_a_start() -> None:
    world = World(ModelSource(arms.PYTHON, arms.RUST_WIN))
    second = _second_canary(world)
    world.kube.objects[PATH]["status"] = {"phase": "RolledBack"}
    stale = dataclasses.replace(claims.claimant(world.kube.objects[PATH]), phase=Phase.PROGRESSING)
    _with_view(world, [stale])
    assert _tick(world, second)["phase"] == "Progressing"


def test_a_view_that_names_a_real_blocker_after_a_ghost_still_waits_on_it() -> None:
    world = World(ModelSource(arms.PYTHON, arms.RUST_WIN))
    second = _second_canary(world)
    ghost = _claimant("ghost", "2025-01-01T00:00:00Z", Phase.PROGRESSING, PY)
    counting = _with_view(world, [ghost, claims.claimant(world.kube.objects[PATH])])
    waiting = _tick(world, second)
    assert _routed(waiting)["reason"] == "ClaimedByAnother"
    assert counting.gets == ["ghost", "scorer"]


def test_without_a_view_a_start_lists_its_namespace() -> None:
    world = World(ModelSource(arms.PYTHON, arms.RUST_WIN))
    second = _second_canary(world)
    counting = _with_view(world, [])
    world.deps = reconcile.Deps(
        api=counting,
        sources=lambda ns, sp: world.source,
        clock=lambda: world.now,
        claimants=lambda namespace: None,  # the index could not be read now
    )
    assert _routed(_tick(world, second))["reason"] == "ClaimedByAnother"
    assert counting.lists == 1


class _Changing:
    """A store of kopf's index that the event loop changes while a look copies it."""

    def __init__(self, fail: int, values: list[claims.Claimant]) -> None:
        self.fail, self.values = fail, values

    def __iter__(self) -> Any:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("dictionary changed size during iteration")
        return iter(self.values)


def test_the_index_is_copied_again_when_kopf_changed_it_during_the_copy() -> None:
    one = _claimant("a", "t", Phase.PROGRESSING, PY)
    assert canary.claimants_in({NS: _Changing(2, [one])}, NS) == [one]
    assert canary.claimants_in({NS: _Changing(5, [one])}, NS) is None  # the look lists instead
    assert canary.claimants_in({}, NS) == []
