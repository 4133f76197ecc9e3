"""The reference workload's manifests against a real API server: accepted, available, routed 100/0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ferrocanary.local.sandbox import Sandbox

K8S = Path(__file__).resolve().parents[2] / "workloads" / "k8s"


@pytest.mark.integration
def test_manifests_apply_and_both_builds_become_available(sandbox: Sandbox, namespace: str) -> None:
    sandbox.kubectl("-n", namespace, "apply", "-k", str(K8S))
    for name in ("scorer-python", "scorer-rust"):
        sandbox.kubectl(
            "-n", namespace, "wait", f"deployment/{name}", "--for=condition=Available", "--timeout=120s"
        )
    pods = json.loads(sandbox.kubectl("-n", namespace, "get", "pods", "-l", "app=scorer", "-o", "json"))[
        "items"
    ]
    assert sorted({p["metadata"]["labels"]["track"] for p in pods}) == ["baseline", "candidate"]
    route = json.loads(sandbox.kubectl("-n", namespace, "get", "httproute", "scorer", "-o", "json"))
    refs = route["spec"]["rules"][0]["backendRefs"]
    assert {r["name"]: r["weight"] for r in refs} == {"scorer-python": 100, "scorer-rust": 0}
