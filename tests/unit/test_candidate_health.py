"""The readiness gate and pod faults: traffic moves only to a ready candidate; a faulty one rolls back.

Pod and Deployment statuses are written into the fake API as the kubelet and the Deployment
controller would; the tick reads them through kube/health.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from ferrocanary.kube import health
from tests.fakes.metrics import ModelSource
from tests.fakes.world import BASE, World, spec
from tests.support import arms

PODS = "/api/v1/namespaces/shop/pods/"


def container(last: dict[str, Any] | None = None, waiting: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {"name": "scorer", "restartCount": 1 if last else 0, "lastState": last or {}, "state": state}


def pod(name: str, *containers: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app": "scorer", "build": "rust"}},
        "status": {"containerStatuses": list(containers)},
    }


@pytest.mark.parametrize(
    ("status", "kind", "words"),
    [
        (
            container({"terminated": {"exitCode": 137, "reason": "OOMKilled"}}),
            health.FaultKind.MEMORY,
            "OOMKilled",
        ),
        (
            container({"terminated": {"exitCode": 101, "reason": "Error"}}),
            health.FaultKind.MEMORY,
            "Rust panic",
        ),
        (container({"terminated": {"exitCode": 139}}), health.FaultKind.MEMORY, "SIGSEGV"),
        (container({"terminated": {"exitCode": 1, "reason": "Error"}}), health.FaultKind.CRASH, "code 1"),
        (container(waiting="CrashLoopBackOff"), health.FaultKind.CRASH, "CrashLoopBackOff"),
        (container(waiting="ImagePullBackOff"), health.FaultKind.IMAGE, "ImagePullBackOff"),
        (container(waiting="ErrImagePull"), health.FaultKind.IMAGE, "cannot be pulled"),
    ],
)
def test_each_container_fault_is_named_by_its_cause(
    status: dict[str, Any], kind: health.FaultKind, words: str
) -> None:
    (fault,) = health.faults([pod("scorer-rust-1", status)])
    assert fault.kind is kind
    assert words in fault.message
    assert "scorer-rust-1" in fault.message


def test_healthy_and_cleanly_exited_containers_are_not_faults() -> None:
    clean = container({"terminated": {"exitCode": 0, "reason": "Completed"}})
    assert (
        list(
            health.faults(
                [pod("a", container()), pod("b", clean), pod("c", container(waiting="ContainerCreating"))]
            )
        )
        == []
    )


def _world(**overrides: Any) -> World:
    world = World(ModelSource(arms.PYTHON, arms.RUST_WIN), spec(**overrides))
    world.kube.objects[BASE + "rs"]["spec"]["selector"] = {"matchLabels": {"app": "scorer", "build": "rust"}}
    return world


def _condition(world: World) -> dict[str, Any]:
    return next(c for c in world.status["conditions"] if c["type"] == "CandidateAvailable")


@pytest.mark.parametrize(
    ("last", "reason", "words"),
    [
        ({"terminated": {"exitCode": 101, "reason": "Error"}}, "CandidateMemoryFault", "memory fault"),
        ({"terminated": {"exitCode": 1, "reason": "Error"}}, "CandidateCrashed", "crash"),
    ],
)
def test_a_candidate_pod_that_restarts_after_a_bad_exit_rolls_back_at_once(
    last: dict[str, Any], reason: str, words: str
) -> None:
    world = _world()
    world.run(lambda s: s.get("stepIndex") == 0 and bool(s.get("lastTickAt")))
    world.kube.add(PODS + "rs-1", pod("rs-1", container(last)))
    status = world.run(lambda s: s.get("phase") == "RolledBack", max_seconds=30)
    assert status["verdict"] == "Rollback"
    assert words in status["verdictReason"]
    assert "rs-1" in status["verdictReason"]
    assert _condition(world)["reason"] == reason
    assert world.replicas() == (10, 0)
    assert reason in world.reasons()


def test_an_image_pull_failure_before_the_start_never_moves_traffic() -> None:
    world = _world()
    world.kube.objects[BASE + "rs"]["spec"]["replicas"] = 1
    world.kube.add(PODS + "rs-1", pod("rs-1", container(waiting="ImagePullBackOff")))
    status = world.run(lambda s: s.get("phase") == "RolledBack", max_seconds=30)
    assert "image pull failure" in status["verdictReason"]
    assert _condition(world)["reason"] == "CandidateImagePullFailed"
    assert not status.get("steps")  # never started: no traffic went to it


def test_a_candidate_short_of_replicas_holds_its_step_then_misses_the_progress_deadline() -> None:
    world = _world(progressDeadline="3m")
    world.run(lambda s: s.get("stepIndex") == 0 and bool(s.get("lastTickAt")))
    # The router asked for 1 candidate pod; none becomes available (e.g. a failing readiness probe).
    world.kube.objects[BASE + "rs"]["status"] = {"availableReplicas": 0}
    held = world.run(lambda s: s.get("decision") == "Hold", max_seconds=30)
    assert "waiting for the candidate (0/1 candidate replicas available)" in held["decisionReason"]
    assert _condition(world)["reason"] == "CandidateNotReady"
    for _ in range(24):  # two minutes past minDwell (60 s): a ready candidate would have stepped up
        world.tick()
    assert (world.status["phase"], world.status["stepIndex"]) == ("Progressing", 0)
    status = world.run(lambda s: s.get("phase") == "RolledBack", max_seconds=120)
    assert "spec.progressDeadline (180s)" in status["verdictReason"]
    assert _condition(world)["reason"] == "ProgressDeadlineExceeded"
    assert "ProgressDeadlineExceeded" in world.reasons()  # an Event too, though the condition was False
    assert world.replicas() == (10, 0)


def test_a_pending_canary_waits_for_its_candidate_then_starts() -> None:
    world = _world()
    world.kube.objects[BASE + "rs"]["spec"]["replicas"] = 2
    world.kube.objects[BASE + "rs"]["status"] = {"availableReplicas": 1}
    for _ in range(5):
        world.tick()
    assert world.status["phase"] == "Pending"
    assert _condition(world)["message"] == "1/2 candidate replicas available"
    world.kube.objects[BASE + "rs"]["status"] = {"availableReplicas": 2}
    world.run(lambda s: s.get("phase") == "Progressing", max_seconds=10)
    assert _condition(world)["reason"] == "CandidateReady"


def test_a_candidate_whose_rollout_is_unfinished_gets_no_traffic_though_its_old_pods_are_available() -> None:
    world = _world()
    world.kube.objects[BASE + "rs"]["spec"]["replicas"] = 2
    # Just edited: the old ReplicaSet's two pods are available, the new spec's are not there yet.
    world.kube.objects[BASE + "rs"]["metadata"]["generation"] = 2
    world.kube.objects[BASE + "rs"]["status"] = {"availableReplicas": 2, "observedGeneration": 1}
    for _ in range(5):
        world.tick()
    assert world.status["phase"] == "Pending"
    assert "rollout of the current spec is not finished" in _condition(world)["message"]
    world.kube.objects[BASE + "rs"]["status"] = {
        "availableReplicas": 2,
        "observedGeneration": 2,
        "updatedReplicas": 1,
    }
    for _ in range(5):
        world.tick()
    assert world.status["phase"] == "Pending"  # seen, but one replica still runs the old spec
    world.kube.objects[BASE + "rs"]["status"] = {
        "availableReplicas": 2,
        "observedGeneration": 2,
        "updatedReplicas": 2,
    }
    world.run(lambda s: s.get("phase") == "Progressing", max_seconds=10)


def test_an_analysis_only_canary_is_not_gated_it_sends_no_traffic() -> None:
    analysis_only = spec()
    analysis_only["trafficRouting"] = {"none": {}}
    world = World(ModelSource(arms.PYTHON, arms.RUST_WIN), analysis_only)
    del world.kube.objects[BASE + "rs"]  # the split is made elsewhere; not even a Deployment here
    status = world.run(lambda s: s.get("phase") == "Progressing", max_seconds=10)
    assert not any(c["type"] == "CandidateAvailable" for c in status.get("conditions", []))
