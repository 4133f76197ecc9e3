"""The readiness gate and pod faults on the real control plane (the operator in a kopf runner).

A candidate whose pods can never be scheduled (real scheduler, real Deployment controller) must
never get traffic and must roll back at ``spec.progressDeadline``; a candidate pod whose container
restarted after exit 1 and now crash-loops (its status written through the apiserver as a kubelet
would, on a node no kubelet serves) must roll the canary back at once, naming the cause.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kopf.testing import KopfRunner

from ferrocanary.kube import rest
from ferrocanary.local.sandbox import Sandbox
from tests.support import arms
from tests.support.canary import Canary, install_crd, running
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def operator(sandbox: Sandbox, namespace: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[KopfRunner]:
    install_crd(sandbox)
    monkeypatch.setenv("KUBECONFIG", str(sandbox.kubeconfig))
    monkeypatch.setenv("FERROCANARY_METRICS_PORT", "0")
    args = ["run", "--standalone", "--namespace", namespace, "-m", "ferrocanary.handlers"]
    with KopfRunner(args, timeout=60) as runner:
        yield runner


def _condition(status: dict[str, object], kind: str = "CandidateAvailable") -> dict[str, str]:
    conditions = status.get("conditions") or []
    assert isinstance(conditions, list)
    return next((c for c in conditions if c.get("type") == kind), {})


def test_a_candidate_that_never_gets_ready_gets_no_traffic_and_misses_its_deadline(
    sandbox: Sandbox, api: rest.Rest, namespace: str, operator: KopfRunner, tmp_path: Path
) -> None:
    canary = Canary(
        sandbox,
        api,
        namespace,
        "unready",
        "gatewayAPI",
        arms.RUST_WIN,
        spec_overrides={"progressDeadline": "20s"},
    )
    with running(canary, tmp_path):
        # A new ReplicaSet whose pods no node accepts: a pod short of the four asked for, for good.
        nowhere = {"spec": {"template": {"spec": {"nodeSelector": {"ferrocanary.io/nowhere": "true"}}}}}
        sandbox.kubectl(
            "-n",
            namespace,
            "patch",
            f"deploy/{canary.candidate_deploy}",
            "--type=merge",
            "-p",
            json.dumps(nowhere),
        )
        canary.apply()
        waiting = canary.wait(
            lambda s: _condition(s).get("reason") == "CandidateNotReady", 30, "CandidateNotReady"
        )
        assert waiting["phase"] == "Pending"
        assert canary.route_weights().get("unready-rust", 0) == 0
        status = canary.wait_terminal(60)
        assert (status["phase"], status["verdict"]) == ("RolledBack", "Rollback")
        assert "spec.progressDeadline (20s)" in status["verdictReason"]
        assert _condition(status)["reason"] == "ProgressDeadlineExceeded"
        assert not status.get("steps")  # no step ever started: no request went to it
        assert canary.route_weights() == {"unready-python": 100}
        assert "ProgressDeadlineExceeded" in canary.reasons()


def test_a_crash_looping_candidate_rolls_back_at_once_naming_the_cause(
    sandbox: Sandbox, api: rest.Rest, namespace: str, operator: KopfRunner, tmp_path: Path
) -> None:
    canary = Canary(
        sandbox,
        api,
        namespace,
        "crashy",
        "gatewayAPI",
        arms.RUST_WIN,
        spec_overrides={"analysis": {"minBlocks": 40}},
    )
    with running(canary, tmp_path):
        canary.apply()
        canary.wait(
            lambda s: s.get("phase") == "Progressing" and bool(s.get("lastTickAt")), 60, "Progressing"
        )
        assert canary.route_weights() == {"crashy-python": 90, "crashy-rust": 10}
        # One candidate pod (the Deployment's labels) on a node no kubelet serves; its status is
        # written as a kubelet would after exit 1 and a restart.
        pods = f"/api/v1/namespaces/{namespace}/pods"
        api.post(
            pods,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "crashy-rust-x", "labels": {"app": "scorer", "build": "rust"}},
                "spec": {
                    "nodeName": "ghost-node",
                    "containers": [{"name": "scorer", "image": "scorer-rust:1"}],
                },
            },
        )
        api.patch(
            f"{pods}/crashy-rust-x/status",
            {
                "status": {
                    "phase": "Running",
                    "containerStatuses": [
                        {
                            "name": "scorer",
                            "image": "scorer-rust:1",
                            "imageID": "",
                            "ready": False,
                            "restartCount": 3,
                            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
                        }
                    ],
                }
            },
        )
        status = canary.wait_terminal(30)
        assert (status["phase"], status["verdict"]) == ("RolledBack", "Rollback")
        assert "candidate crash" in status["verdictReason"]
        assert "crashy-rust-x" in status["verdictReason"]
        assert "exited with code 1" in status["verdictReason"]
        assert _condition(status)["reason"] == "CandidateCrashed"
        assert canary.route_weights() == {"crashy-python": 100}
        # The route as the team wrote it: one backendRef, no weight, no record of ours left.
        refs = canary.route_backend_refs()
        assert [(r["name"], r.get("weight", 1)) for r in refs] == [("crashy-python", 1)]
        assert "CandidateCrashed" in canary.reasons()


def test_the_fake_node_heartbeats_through_a_lease_so_pods_stay_ready(
    sandbox: Sandbox, api: rest.Rest
) -> None:
    # Without a Lease the fake Node's status was refreshed only every ~55 s, past the node
    # controller's grace period: it flapped NotReady, its pods went unready for good, and every
    # Deployment reported no available replicas (the readiness gate would then hold every canary).
    path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/kwok-node-0"
    first = wait_for(lambda: _renew_time(api, path), 30, "the fake Node's Lease", until=bool, interval=1)
    renewed = wait_for(
        lambda: _renew_time(api, path), 30, "a renewal", until=lambda t: t != first, interval=1
    )
    assert renewed > first


def _renew_time(api: rest.Rest, path: str) -> str:
    try:
        return str(api.get(path)["spec"].get("renewTime") or "")
    except rest.NotFoundError:
        return ""


def test_deleting_a_canary_that_waits_for_its_candidate_leaves_the_route_as_the_team_wrote_it(
    sandbox: Sandbox, api: rest.Rest, namespace: str, operator: KopfRunner, tmp_path: Path
) -> None:
    canary = Canary(sandbox, api, namespace, "waiting", "gatewayAPI", arms.RUST_WIN)
    with running(canary, tmp_path):
        nowhere = {"spec": {"template": {"spec": {"nodeSelector": {"ferrocanary.io/nowhere": "true"}}}}}
        sandbox.kubectl(
            "-n",
            namespace,
            "patch",
            f"deploy/{canary.candidate_deploy}",
            "--type=merge",
            "-p",
            json.dumps(nowhere),
        )
        canary.apply()
        canary.wait(lambda s: _condition(s).get("reason") == "CandidateNotReady", 30, "CandidateNotReady")
        # ensure() ran: the candidate's backendRef is on the route at weight 0, waiting.
        assert [r["name"] for r in canary.route_backend_refs()] == ["waiting-python", "waiting-rust"]
        canary.delete()
        refs = canary.route_backend_refs()
        assert [(r["name"], r.get("weight", 1)) for r in refs] == [("waiting-python", 1)]
