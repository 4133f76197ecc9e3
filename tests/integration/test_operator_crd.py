"""The RustCanary CRD in the real apiserver: examples apply, bad specs are refused naming the field."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ferrocanary.local.sandbox import Sandbox
from tests.support.canary import install_crd

pytestmark = pytest.mark.integration
EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "crds" / "examples").glob("*.yaml"))


def _apply(sandbox: Sandbox, namespace: str, body: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(sandbox.bin_dir / "kubectl"), "-n", namespace, "apply", "-f", "-"],
        input=body,
        env=sandbox.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_examples_apply_and_get_the_defaults(sandbox: Sandbox, namespace: str) -> None:
    install_crd(sandbox)
    for example in EXAMPLES:
        applied = _apply(sandbox, namespace, example.read_text())
        assert applied.returncode == 0, applied.stderr
    observe = yaml.safe_load(
        sandbox.kubectl("-n", namespace, "get", "rcanary", "scorer-observe", "-o", "yaml")
    )
    analysis = observe["spec"]["analysis"]
    assert [k["name"] for k in analysis["kpis"]] == [
        "p99-latency",
        "throughput-per-cpu",
        "cost-per-request",
        "memory-faults",
    ]
    assert (analysis["interval"], analysis["warmup"], observe["spec"]["steps"]["weights"]) == (
        "1m",
        "2m",
        [5, 10, 25, 50],
    )
    columns = sandbox.kubectl("-n", namespace, "get", "rustcanaries").splitlines()[0].split()
    assert columns[:5] == ["NAME", "PHASE", "WEIGHT", "VERDICT", "P99"]


BAD = """
apiVersion: ferrocanary.io/v1alpha1
kind: RustCanary
metadata: {name: bad}
spec:
  baseline: {deployment: scorer-python}
  candidate: {deployment: scorer-rust}
  trafficRouting: {replicas: {total: 4}, none: {}}
  steps: {weights: [10, 5, 200], minDwell: 10x}
  analysis:
    interval: 0s
    prometheus: {address: "http://prometheus:9090"}
    kpis:
      - {name: p99-latency, type: latencyQuantile, quantile: 0.99, target: 3}
"""


@pytest.mark.parametrize(
    "message",
    [
        "spec.trafficRouting: set exactly one of gatewayAPI, istio, nginx, replicas, none",
        "spec.steps.weights must be strictly increasing",
        "spec.steps.weights: every weight must be within 1..100",
        "spec.steps.minDwell",
        "spec.analysis.interval must be within 1s..1h",
        "spec.analysis.kpis[0].target",
    ],
)
def test_a_bad_spec_is_refused_with_a_message_naming_the_field(
    sandbox: Sandbox, namespace: str, message: str
) -> None:
    install_crd(sandbox)
    refused = _apply(sandbox, namespace, BAD)
    assert refused.returncode != 0
    assert message in refused.stderr
    assert (
        "NotFound"
        in subprocess.run(
            [str(sandbox.bin_dir / "kubectl"), "-n", namespace, "get", "rcanary", "bad"],
            env=sandbox.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stderr
    )


@pytest.mark.parametrize(
    ("example", "provider"),
    [("gateway-api.yaml", "gatewayAPI"), ("istio.yaml", "istio"), ("nginx.yaml", "nginx")],
)
def test_service_routing_needs_both_services(
    sandbox: Sandbox, namespace: str, example: str, provider: str
) -> None:
    install_crd(sandbox)
    body = yaml.safe_load(EXAMPLES[[p.name for p in EXAMPLES].index(example)].read_text())
    del body["spec"]["candidate"]["service"]
    refused = _apply(sandbox, namespace, yaml.safe_dump(body))
    assert refused.returncode != 0
    assert (
        f"spec.baseline.service and spec.candidate.service are required with spec.trafficRouting.{provider}"
        in refused.stderr
    )


def _set_phase(sandbox: Sandbox, namespace: str, name: str, phase: str) -> None:
    sandbox.kubectl(
        "-n",
        namespace,
        "patch",
        f"rcanary/{name}",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": phase}}),
    )


@pytest.mark.parametrize(
    ("field", "edit"),
    [
        ("spec.trafficRouting", {"trafficRouting": {"gatewayAPI": {"httpRoute": "another-route"}}}),
        ("spec.candidate", {"candidate": {"service": "scorer-rust-v2"}}),
        ("spec.baseline", {"baseline": {"deployment": "scorer-python-v2"}}),
        ("spec.service", {"service": {"name": "scorer-v2"}}),
    ],
)
def test_what_moves_traffic_is_immutable_while_the_canary_runs(
    sandbox: Sandbox, namespace: str, field: str, edit: dict[str, Any]
) -> None:
    install_crd(sandbox)
    body = yaml.safe_load(EXAMPLES[[p.name for p in EXAMPLES].index("gateway-api.yaml")].read_text())
    name = body["metadata"]["name"]
    assert _apply(sandbox, namespace, yaml.safe_dump(body)).returncode == 0
    patch = ["-n", namespace, "patch", f"rcanary/{name}", "--type=merge", "-p", json.dumps({"spec": edit})]

    def try_edit() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(sandbox.bin_dir / "kubectl"), *patch],
            env=sandbox.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    _set_phase(sandbox, namespace, name, "Progressing")
    refused = try_edit()
    assert refused.returncode != 0
    assert f"{field} cannot change while the canary runs" in refused.stderr
    # Other fields stay editable mid-flight (the judge's settings, e.g. the confidence).
    sandbox.kubectl(
        "-n",
        namespace,
        "patch",
        f"rcanary/{name}",
        "--type=merge",
        "-p",
        '{"spec":{"analysis":{"confidence":0.9}}}',
    )
    # Once the canary has ended (or before it starts), the team may change anything.
    _set_phase(sandbox, namespace, name, "RolledBack")
    allowed = try_edit()
    assert allowed.returncode == 0, allowed.stderr
