"""The demo's choices that need no sandbox: which nodes it runs on and why, what it applies for a
scenario (the fault mode in the candidate's pod spec, the real node's images), and where a real
node's pods answer for the gateway."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import pytest

from ferrocanary.cli import demo as cli_demo
from ferrocanary.local import demo
from ferrocanary.local.toolchain import Component, repo_root

BUILT = {
    "textscore:python": "ferrocanary.local/textscore:python-abc",
    "textscore:rust": "ferrocanary.local/textscore:rust-def",
}


def _deployments(text: str) -> dict[str, dict[str, Any]]:
    items = json.loads(text)["items"]
    return {d["metadata"]["name"]: d for d in items if d["kind"] == "Deployment"}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_the_oom_scenario_sets_the_leak_and_the_memory_limit_in_the_candidates_pod_spec_only() -> None:
    workload = demo.Workload.load(repo_root() / "workloads" / "k8s")
    deployments = _deployments(workload.manifests("ns", demo.SCENARIOS["oom"]))
    candidate, baseline = (
        _container(deployments[workload.candidate]),
        _container(deployments[workload.baseline]),
    )
    env = {e["name"]: e["value"] for e in candidate["env"]}
    assert env["TEXTSCORE_FAULT"] == "leak"
    assert int(env["TEXTSCORE_FAULT_LEAK_KIB"]) > 0
    assert candidate["resources"]["limits"]["memory"] == "128Mi"
    assert candidate["resources"]["requests"]["memory"] == "128Mi"  # never above the limit
    assert {e["name"]: e["value"] for e in baseline["env"]}["TEXTSCORE_FAULT"] == ""
    assert baseline["resources"]["limits"]["memory"] == "256Mi"
    # kwok's demo keeps the manifests' images: the stand-in maps them to local commands.
    assert candidate["image"] == "textscore:rust"


def test_on_a_real_node_every_pod_runs_the_locally_built_image_never_pulled() -> None:
    workload = demo.Workload.load(repo_root() / "workloads" / "k8s")
    deployments = _deployments(workload.manifests("ns", demo.SCENARIOS["crash"], BUILT))
    for name, image in (
        (workload.baseline, BUILT["textscore:python"]),
        (workload.candidate, BUILT["textscore:rust"]),
    ):
        container = _container(deployments[name])
        assert (container["image"], container["imagePullPolicy"]) == (image, "Never")
        assert container["resources"]["requests"]["cpu"] == demo.REAL_NODE_CPU_REQUEST
        assert container["resources"]["limits"]["cpu"] == "1"
    env = {e["name"]: e["value"] for e in _container(deployments[workload.candidate])["env"]}
    assert env["TEXTSCORE_FAULT"] == "crash"


def test_the_cli_offers_every_scenario_and_the_nodes_choice() -> None:
    parser = argparse.ArgumentParser()
    cli_demo.register(parser.add_subparsers())
    args = parser.parse_args(["demo", "--scenario", "oom"])
    assert (args.scenario, args.nodes) == ("oom", "auto")
    for name in demo.SCENARIOS:  # each one the demo knows can be asked for
        assert parser.parse_args(["demo", "--scenario", name]).scenario == name


def _no_sandboxes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, missing: list[Component]) -> None:
    monkeypatch.setenv("FERROCANARY_CACHE", str(tmp_path))

    class Toolchain:
        def missing(self, nodes: str) -> list[Component]:
            assert nodes == "real"
            return missing

    monkeypatch.setattr(demo, "Toolchain", Toolchain)


def test_auto_runs_on_kwok_without_root_and_says_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _no_sandboxes(monkeypatch, tmp_path, [])
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    nodes, why = demo.choose_nodes("auto", "demo")
    assert nodes == "kwok"
    assert "root" in why


def test_auto_runs_on_kwok_when_the_real_nodes_parts_are_not_built(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    kubelet = Component("kubelet", "1", ("kubelet",), "go build", lambda target, log: None)
    _no_sandboxes(monkeypatch, tmp_path, [kubelet])
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    nodes, why = demo.choose_nodes("auto", "demo")
    assert nodes == "kwok"
    assert "kubelet" in why


def test_auto_runs_on_the_real_node_as_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _no_sandboxes(monkeypatch, tmp_path, [])
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert demo.choose_nodes("auto", "demo")[0] == "real"
    assert demo.choose_nodes("kwok", "demo") == ("kwok", "--nodes kwok")
    with pytest.raises(ValueError, match="--nodes"):
        demo.choose_nodes("fake", "demo")


class _Pods:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def get(self, path: str) -> dict[str, Any]:
        assert path == "/api/v1/namespaces/ns/pods"
        return {"items": self.items}


def _pod(name: str, ip: str, ready: bool, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {"containers": [{"name": "textscore", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def test_the_gateway_sends_only_to_ready_pods_at_their_pod_ips() -> None:
    pods = [
        _pod("rust-a", "10.0.0.5", ready=True),
        _pod("rust-b", "10.0.0.6", ready=False),  # crashed, restarting: out of the upstream
        _pod("rust-c", "10.0.0.7", ready=True, deleting=True),
        _pod("python-a", "10.0.0.8", ready=True),
    ]
    addresses = demo.PodAddresses(_Pods(pods), "ns")  # type: ignore[arg-type]
    assert addresses.endpoints({"rust-a", "rust-b", "rust-c"}) == ["10.0.0.5:8080"]
