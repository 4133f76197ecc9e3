"""The cAdvisor preset judged on a real node: CPU as the kubelet's cAdvisor measures real containers.

One sandbox with a real node for the module (``local up --nodes real``: containerd, the kubelet with
its cAdvisor, kube-state-metrics, Prometheus discovering them through the apiserver). Each build is
a Deployment of one real pod that burns CPU up to its CFS quota (the Python build 80m, the Rust
build 20m), so the kernel's accounting, read by cAdvisor, says the Rust build spends a quarter of
the CPU. Requests and latency are played by the contract exporter (support/exporter.py) under the
real pods' names, the traffic split fixed at 50/50 (``trafficRouting.none``), with the same CPU per
request in both builds' process collector: only cAdvisor's series can show the Rust build's
advantage, so a promotion with a throughput-per-CPU near 4x is read from cAdvisor or not at all;
``status.arms`` shows each build's CPU in cores as the judge read it, the quotas.

Run it under ``flock /tmp/ferrocanary-realnode.lock`` (one real node per machine). About 20 s to
start the node, then about a minute for the canary.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes import config

from ferrocanary.kube import rest
from ferrocanary.local import images
from ferrocanary.local.sandbox import Sandbox
from tests.support import arms, waiting
from tests.support.canary import Canary, fresh_namespaces, install_crd

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="a real node needs root"),
]

BASELINE_MILLICORES = 80
CANDIDATE_MILLICORES = 20  # a quarter of the baseline's CPU for the same requests


@pytest.fixture(scope="module")
def real() -> Iterator[Sandbox]:
    box = Sandbox(f"realpresets-{os.getpid()}", nodes="real")
    try:
        box.up()
        install_crd(box)
        yield box
    finally:
        box.down()


@pytest.fixture(scope="module")
def real_api(real: Sandbox) -> rest.Rest:
    return rest.Rest(config.new_client_from_config(config_file=str(real.kubeconfig)))


@pytest.fixture
def namespace(real: Sandbox) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    with fresh_namespaces(real, name):
        yield name


@pytest.fixture
def operator(real: Sandbox, namespace: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[KopfRunner]:
    monkeypatch.setenv("KUBECONFIG", str(real.kubeconfig))
    monkeypatch.delenv("FERROCANARY_METRICS_PORT", raising=False)
    args = ["run", "--standalone", "--namespace", namespace, "-m", "ferrocanary.handlers"]
    with KopfRunner(args, timeout=60) as runner:
        yield runner


def burner(namespace: str, name: str, build: str, millicores: int) -> dict[str, Any]:
    """A Deployment of one busybox pod spinning as fast as its CPU quota lets it."""
    labels = {"app": "scorer", "build": build}
    cpu = {"cpu": f"{millicores}m", "memory": "16Mi"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "scorer",
                            "image": images.BUSYBOX_IMAGE,
                            "imagePullPolicy": "Never",
                            "command": ["sh", "-c", "while :; do :; done"],
                            "resources": {"requests": cpu, "limits": cpu},
                        }
                    ],
                },
            },
        },
    }


def _running_pod(real: Sandbox, namespace: str, build: str) -> str:
    selector = f"app=scorer,build={build}"

    def name() -> str:
        found = json.loads(real.kubectl("-n", namespace, "get", "pods", "-l", selector, "-o", "json"))
        ready = [
            p["metadata"]["name"]
            for p in found["items"]
            if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
        ]
        return ready[0] if ready else ""

    return str(waiting.wait_for(name, 90, f"the {build} pod Ready", until=bool, interval=0.5))


@pytest.mark.usefixtures("operator")
def test_a_candidate_burning_a_quarter_of_the_cpu_on_cadvisor_is_promoted(
    real: Sandbox, real_api: rest.Rest, namespace: str, tmp_path: Path
) -> None:
    # Same CPU per request in both builds' process collector: the win is in cAdvisor's series only.
    candidate = replace(arms.RUST_WIN, cpu_per_request=arms.PYTHON.cpu_per_request)
    canary = Canary(
        real,
        real_api,
        namespace,
        "cadvisorwin",
        "none",
        candidate,
        rps=2000.0,
        spec_overrides={
            "steps": {"weights": [50], "minDwell": "20s"},
            # tightest at 90 s: the canary is meant to end within a couple of minutes
            "analysis": {"metrics": {"preset": "cadvisor"}, "informationHorizon": "90s"},
        },
    )
    apps = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    real_api.post(apps, burner(namespace, canary.baseline_deploy, "python", BASELINE_MILLICORES))
    real_api.post(apps, burner(namespace, canary.candidate_deploy, "rust", CANDIDATE_MILLICORES))
    canary.pod_names = {
        "baseline": _running_pod(real, namespace, "python"),
        "candidate": _running_pod(real, namespace, "rust"),
    }
    try:
        canary.start_exporter(tmp_path)
        canary.apply()
        status = canary.wait_terminal(240)
        assert status["phase"] == "Promoted", status.get("verdictReason")
        assert status["verdict"] == "Promote"
        kpis = {k["name"]: k for k in status["kpis"]}
        throughput = kpis["throughput-per-cpu"]
        assert throughput["decision"] == "Pass"
        # requests per CPU-second as the kernel accounted the quotas: 80m / 20m = 4x (the exporter's
        # process CPU would say 1x)
        assert 1.5 < throughput["lower"] <= throughput["estimate"] <= throughput["upper"]
        assert 3.0 < throughput["estimate"] < 5.0
        # each build's CPU as the judge read it off the newest block: the kernel's quota, in cores
        judged = status["arms"]
        assert judged["baseline"]["cpuCores"] == pytest.approx(BASELINE_MILLICORES / 1000, rel=0.35)
        assert judged["candidate"]["cpuCores"] == pytest.approx(CANDIDATE_MILLICORES / 1000, rel=0.35)
        assert status["pricing"]["source"] == "static"  # no OpenCost on this node
    finally:
        canary.delete()
        canary.stop()
