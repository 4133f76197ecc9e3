"""The local sandbox is the real thing: a control plane that runs Deployments on kwok nodes,
enforces CRD schemas, and a Prometheus that scrapes real processes; helm and kubectl match it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from ferrocanary.local import processes
from ferrocanary.local.sandbox import Sandbox, SandboxError

pytestmark = pytest.mark.integration


def _kubectl(sandbox: Sandbox, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(sandbox.bin_dir / "kubectl"), *args],
        env={**os.environ, **sandbox.env()},
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


def test_deployment_becomes_available_on_a_kwok_node(sandbox: Sandbox, namespace: str) -> None:
    _kubectl(
        sandbox,
        "-n",
        namespace,
        "create",
        "deployment",
        "web",
        "--image=registry.invalid/web:1",
        "--replicas=2",
    )
    waited = _kubectl(
        sandbox, "-n", namespace, "wait", "deploy/web", "--for=condition=Available", "--timeout=90s"
    )
    assert "condition met" in waited.stdout
    pods = json.loads(_kubectl(sandbox, "-n", namespace, "get", "pods", "-o", "json").stdout)["items"]
    # kwok-node-0, or a kwok node a bench slice added earlier in this session (the scheduler may prefer it)
    nodes = json.loads(_kubectl(sandbox, "get", "nodes", "-l", "type=kwok", "-o", "json").stdout)["items"]
    assert "kwok-node-0" in {node["metadata"]["name"] for node in nodes}
    assert len(pods) == 2
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        assert pod["spec"]["nodeName"] in {node["metadata"]["name"] for node in nodes}


_WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.sandbox.test"},
    "spec": {
        "group": "sandbox.test",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {"size": {"type": "integer", "minimum": 1, "maximum": 10}},
                            }
                        },
                    }
                },
            }
        ],
    },
}


def test_crd_validation_refuses_a_bad_object(sandbox: Sandbox, namespace: str) -> None:
    subprocess.run(
        [str(sandbox.bin_dir / "kubectl"), "apply", "-f", "-"],
        input=json.dumps(_WIDGET_CRD),
        env={**os.environ, **sandbox.env()},
        check=True,
        capture_output=True,
        text=True,
    )
    _kubectl(sandbox, "wait", "crd/widgets.sandbox.test", "--for=condition=Established", "--timeout=60s")
    good = {
        "apiVersion": "sandbox.test/v1",
        "kind": "Widget",
        "metadata": {"name": "ok"},
        "spec": {"size": 3},
    }
    bad = {
        "apiVersion": "sandbox.test/v1",
        "kind": "Widget",
        "metadata": {"name": "bad"},
        "spec": {"size": 42},
    }
    for obj, should_pass in ((good, True), (bad, False)):
        proc = subprocess.run(
            [str(sandbox.bin_dir / "kubectl"), "-n", namespace, "apply", "-f", "-"],
            input=json.dumps(obj),
            env={**os.environ, **sandbox.env()},
            capture_output=True,
            text=True,
            check=False,
        )
        assert (proc.returncode == 0) is should_pass, proc.stderr
        if not should_pass:
            assert "spec.size" in proc.stderr
            assert "less than or equal to 10" in proc.stderr


def _query(sandbox: Sandbox, promql: str) -> list[dict[str, Any]]:
    url = f"{sandbox.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_prometheus_scrapes_a_process_started_by_the_test(sandbox: Sandbox, tmp_path: Path) -> None:
    port = processes.free_port()
    exporter = (
        "import time, prometheus_client as p\n"
        "g = p.Gauge('sandbox_test_answer', 'a value only this test exposes')\n"
        "g.set(42)\n"
        f"p.start_http_server({port}, addr='127.0.0.1')\n"
        "time.sleep(600)\n"
    )
    started = processes.start("exporter", [sys.executable, "-c", exporter], tmp_path / "exporter.log")
    try:
        sandbox.add_scrape_target("sandbox-test", [f"127.0.0.1:{port}"], {"track": "candidate"})
        deadline = time.monotonic() + 60
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not result:
            result = _query(sandbox, "sandbox_test_answer")
            time.sleep(0.5)
        assert result, "Prometheus never scraped the test's exporter"
        assert result[0]["value"][1] == "42"
        assert result[0]["metric"]["job"] == "sandbox-test"
        assert result[0]["metric"]["track"] == "candidate"
    finally:
        sandbox.remove_scrape_target("sandbox-test")
        processes.stop(started.pid, started.executable)
    assert not processes.is_running(started.pid, started.executable)


def _server_version(kube_api: client.ApiClient) -> str:
    return str(client.VersionApi(kube_api).get_code().git_version)


def test_kubectl_and_helm_agree_with_the_server(sandbox: Sandbox, kube_api: client.ApiClient) -> None:
    server = _server_version(kube_api)
    assert server == sandbox.toolchain.versions.kubernetes
    versions = json.loads(_kubectl(sandbox, "version", "-o", "json").stdout)
    assert versions["serverVersion"]["gitVersion"] == server
    assert versions["clientVersion"]["gitVersion"] == server
    helm = subprocess.run(
        [str(sandbox.bin_dir / "helm"), "version", "--template", "{{.Version}}"],
        env={**os.environ, **sandbox.env()},
        capture_output=True,
        text=True,
        check=True,
    )
    assert helm.stdout.strip() == sandbox.toolchain.versions.helm
    # Helm's built-in Kubernetes version must match the server's minor, or kubeVersion checks misfire.
    minor = server.split(".")[1]
    capabilities = subprocess.run(
        [str(sandbox.bin_dir / "helm"), "template", "x", str(Path(__file__).parent / "data" / "caps-chart")],
        env={**os.environ, **sandbox.env()},
        capture_output=True,
        text=True,
        check=True,
    )
    assert f'kube-minor: "{minor}"' in capabilities.stdout


def test_a_taken_port_is_refused_with_the_component_named(sandbox: Sandbox) -> None:
    taken = sandbox.load_state()
    assert taken is not None
    other = Sandbox(f"{sandbox.name}-clash")
    with pytest.raises(SandboxError, match=r"prometheus: port 127\.0\.0\.1:\d+ is already taken"):
        other.up(ports={"prometheus": taken.ports["prometheus"]})
    assert other.load_state() is None
    assert other.down() is False  # nothing was created, and down of a sandbox that is not up is harmless
