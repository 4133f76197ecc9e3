"""Two operator replicas with kopf peering on the real control plane: one acts, the other takes over.

Both run as ``ferrocanary run --peering`` in their own processes, as two pods of the chart would
(no ``--priority``: each takes its own from its start). The active one is killed with SIGKILL in
the middle of a canary (no goodbye in the peering object, no last status write) and the standby
must finish the canary with the verdict an uninterrupted run reaches, from the same start, within
the peering lifetime plus a few ticks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from ferrocanary.kube import rest
from ferrocanary.local import processes
from ferrocanary.local.sandbox import Sandbox
from tests.support import arms
from tests.support.canary import (
    Canary,
    _time,
    assert_resumed_to_the_same_promotion,
    install_crd,
    running,
    wait_established,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

CHART_CRDS = Path(__file__).resolve().parents[2] / "charts" / "ferrocanary" / "crds" / "kopf-peering.yaml"
PEERING = "ferrocanary"
LIFETIME = 12  # seconds: the shortest the operator accepts, so the test fails over quickly


@pytest.fixture
def peering(sandbox: Sandbox, api: rest.Rest, namespace: str) -> str:
    install_crd(sandbox)
    sandbox.kubectl("apply", "--server-side", "-f", str(CHART_CRDS))
    wait_established(sandbox, "kopfpeerings.kopf.dev")
    api.post(
        f"/apis/kopf.dev/v1/namespaces/{namespace}/kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}},
    )
    return namespace


def _replica(namespace: str, pod: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "ferrocanary"), "run", "-n", namespace, "--peering", PEERING],
            env={
                **os.environ,
                "POD_NAME": pod,
                "FERROCANARY_METRICS_PORT": "0",
                "FERROCANARY_PEERING_LIFETIME": str(LIFETIME),
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
def replicas(
    sandbox: Sandbox, peering: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    monkeypatch.setenv("KUBECONFIG", str(sandbox.kubeconfig))
    started: dict[str, subprocess.Popen[bytes]] = {}
    try:
        started["op-0"] = _replica(peering, "op-0", tmp_path / "op-0.log")
        time.sleep(1.5)  # op-0 is the older replica: the one that must act first
        started["op-1"] = _replica(peering, "op-1", tmp_path / "op-1.log")
        yield started
    finally:
        for proc in started.values():
            if proc.poll() is None:
                processes.stop(proc.pid, sys.executable)  # the script runs under this interpreter
                proc.wait(timeout=30)


def _peers(api: rest.Rest, namespace: str) -> dict[str, Any]:
    found = api.get(f"/apis/kopf.dev/v1/namespaces/{namespace}/kopfpeerings/{PEERING}")
    peers: dict[str, Any] = found.get("status") or {}
    return peers


def test_two_replicas_one_acts_and_the_standby_finishes_the_canary_after_a_sigkill(
    sandbox: Sandbox,
    api: rest.Rest,
    namespace: str,
    replicas: dict[str, subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    canary = Canary(
        sandbox,
        api,
        namespace,
        "twin",
        "gatewayAPI",
        arms.RUST_WIN,
        spec_overrides={"analysis": {"minBlocks": 12}},
    )
    with ExitStack() as stack:
        stack.enter_context(running(canary, tmp_path))
        peers = wait_for(
            lambda: _peers(api, namespace),
            60,
            "both replicas in the peering object",
            until=lambda p: {"op-0", "op-1"} <= set(p),
            interval=0.5,
        )
        assert peers["op-0"]["priority"] > peers["op-1"]["priority"]  # distinct, the older one higher
        canary.apply()
        mid = canary.wait(lambda s: s.get("stepIndex", -1) >= 1, 180, "the second step")
        assert mid["phase"] == "Progressing"
        # The standby starts paused (peering is mandatory) and stays so while op-0 lives.
        assert "twin" not in (tmp_path / "op-1.log").read_text()  # it never touched the canary
        os.kill(replicas["op-0"].pid, signal.SIGKILL)  # no goodbye in the peering object
        replicas["op-0"].wait(timeout=30)
        killed = time.monotonic()
        last = _time(canary.status.get("lastTickAt"))
        resumed = canary.wait(lambda s: _time(s.get("lastTickAt")) != last, 60, "an analysis by the standby")
        failover = time.monotonic() - killed
        interval = canary.seconds("analysis", "interval")
        assert failover <= LIFETIME + interval + 6, f"failover took {failover:.0f}s"
        assert resumed["startedAt"] == mid["startedAt"]
        status = canary.wait_terminal(300)
        assert_resumed_to_the_same_promotion(canary, status, mid)
        assert "Resuming operations" in (tmp_path / "op-1.log").read_text()
        print(f"two replicas: failover after SIGKILL took {failover:.1f}s (lifetime {LIFETIME}s)")
