"""The reference workload's Kubernetes manifests and Dockerfiles: the shape the canary relies on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

K8S = Path(__file__).resolve().parents[2] / "workloads" / "k8s"
WORKLOADS = K8S.parent


def _objects() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [
        doc
        for name in kustomization["resources"]
        for doc in yaml.safe_load_all((K8S / name).read_text())
        if doc
    ]


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in _objects() if o["kind"] == kind}


def test_one_deployment_per_build_labelled_by_track() -> None:
    deployments = _by_kind("Deployment")
    tracks = {}
    for deployment in deployments.values():
        pod = deployment["spec"]["template"]
        labels = pod["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        (container,) = pod["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        tracks[labels["track"]] = env["TEXTSCORE_BUILD"]
        assert labels["app"] == "scorer"
        assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["resources"]["limits"]["memory"]  # a leak ends in an OOMKill, not a node
    assert tracks == {"baseline": "python", "candidate": "rust"}


def test_route_weights_both_builds_100_to_0_through_their_services() -> None:
    services = _by_kind("Service")
    pods = {d["spec"]["template"]["metadata"]["labels"]["track"]: d for d in _by_kind("Deployment").values()}
    (route,) = _by_kind("HTTPRoute").values()
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    (rule,) = route["spec"]["rules"]
    weights = {ref["name"]: ref["weight"] for ref in rule["backendRefs"]}
    assert weights == {"scorer-python": 100, "scorer-rust": 0}
    for name, track in (("scorer-python", "baseline"), ("scorer-rust", "candidate")):
        selector = services[name]["spec"]["selector"]
        assert selector.items() <= pods[track]["spec"]["template"]["metadata"]["labels"].items()
        assert selector["track"] == track
    assert route["spec"]["parentRefs"][0]["name"] in _by_kind("Gateway")


def test_dockerfiles_are_multi_stage_non_root_and_pick_their_build() -> None:
    for build in ("python", "rust"):
        text = (WORKLOADS / f"Dockerfile.{build}").read_text()
        stages = [line for line in text.splitlines() if line.startswith("FROM ")]
        assert len(stages) >= 2
        # Base images are build arguments whose defaults are the public images a user builds from.
        assert stages[-1].startswith("FROM ${PYTHON_IMAGE}")
        assert "\nARG PYTHON_IMAGE=python:3.11-slim-bookworm\n" in text
        final = text[text.rindex("\nFROM ") :]
        assert "USER 10001" in final
        assert 'ENTRYPOINT ["/usr/bin/tini", "--", "textscore"]' in final
        assert f"TEXTSCORE_BUILD={build}" in final
        assert (WORKLOADS / f"Dockerfile.{build}.dockerignore").exists()
    assert "maturin build --release" in (WORKLOADS / "Dockerfile.rust").read_text()
    assert "\nARG RUST_IMAGE=rust:1-slim-bookworm\n" in (WORKLOADS / "Dockerfile.rust").read_text()
