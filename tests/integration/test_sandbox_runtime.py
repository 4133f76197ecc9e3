"""The sandbox's stand-ins for a container runtime and a Gateway behave like the real ones:
pods kwok runs get real processes, an HTTPRoute's weights split real traffic through nginx, and
crashes and memory-limit kills show up under kube-state-metrics' series in Prometheus."""

from __future__ import annotations

import collections
import http.client
import json
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from ferrocanary.kube import client, rest
from ferrocanary.local import processes
from ferrocanary.local.gateway import NginxGateway, RouteFollower
from ferrocanary.local.pods import PodRunner
from ferrocanary.local.sandbox import Sandbox

pytestmark = pytest.mark.integration
ECHO = Path(__file__).parent / "data" / "echo_server.py"


def _echo(name: str) -> Callable[[Mapping[str, Any], int], list[str]]:
    return lambda _spec, port: [sys.executable, str(ECHO), str(port), name]


def _manifests(namespace: str, weights: tuple[int, int], env_b: list[dict[str, str]], limit_b: str) -> str:
    docs: list[dict[str, Any]] = []
    for arm, image, track in (
        ("a", "example.invalid/echo-a:1", "baseline"),
        ("b", "example.invalid/echo-b:1", "candidate"),
    ):
        container: dict[str, Any] = {"name": "echo", "image": image}
        if arm == "b":
            container["env"] = env_b
            container["resources"] = {"limits": {"memory": limit_b}}
        docs.append({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": arm, "namespace": namespace},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": arm}},
                     "template": {"metadata": {"labels": {"app": arm, "track": track}},
                                  "spec": {"containers": [container]}}},
        })  # fmt: skip
        docs.append({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": arm, "namespace": namespace},
            "spec": {"selector": {"app": arm}, "ports": [{"port": 80, "targetPort": 8080}]},
        })  # fmt: skip
    docs.append({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "echo", "namespace": namespace},
        "spec": {"rules": [{"backendRefs": [{"name": "a", "port": 80, "weight": weights[0]},
                                            {"name": "b", "port": 80, "weight": weights[1]}]}]},
    })  # fmt: skip
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})


@pytest.fixture
def runtime(sandbox: Sandbox, namespace: str) -> Iterator[tuple[PodRunner, NginxGateway, RouteFollower]]:
    api = rest.Rest(client.api_client(str(sandbox.kubeconfig)))
    runner = PodRunner(sandbox, api, namespace, {"echo-a:1": _echo("a"), "echo-b:1": _echo("b")})
    gateway = NginxGateway(
        sandbox.dir / "gateways" / namespace, sandbox.toolchain.path("nginx"), processes.free_port()
    )
    follower = RouteFollower(gateway, api, namespace, "echo", runner=runner)
    runner.start()
    gateway.start()
    follower.start()
    try:
        yield runner, gateway, follower
    finally:
        follower.stop()
        gateway.stop()
        runner.stop()


def _apply(sandbox: Sandbox, text: str) -> None:
    sandbox.kubectl("apply", "-f", "-", input_text=text)


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}")


def _split(url: str, n: int) -> collections.Counter[str]:
    seen: collections.Counter[str] = collections.Counter()
    for _ in range(n):
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                seen[response.read().decode()] += 1
        except (OSError, http.client.HTTPException):  # a backend that dies mid-answer truncates it
            seen["error"] += 1
    return seen


def _query(sandbox: Sandbox, promql: str) -> list[dict[str, Any]]:
    url = f"{sandbox.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        result: list[dict[str, Any]] = json.load(response)["data"]["result"]
        return result


def test_route_weights_split_real_traffic_and_follow_changes(
    sandbox: Sandbox, namespace: str, runtime: tuple[PodRunner, NginxGateway, RouteFollower]
) -> None:
    runner, gateway, follower = runtime
    _apply(sandbox, _manifests(namespace, (80, 20), [], "1Gi"))
    _wait(lambda: len(runner.endpoints({c.pod for c in runner.snapshot()})) == 2, 60, "both pods to run")
    _wait(
        lambda: follower.weights == {"a": 80, "b": 20} and len(gateway.programmed or ()) == 2, 30, "the split"
    )
    _wait(lambda: _split(gateway.url, 5)["error"] == 0, 30, "both processes to answer")
    # nginx's smooth weighted round-robin is deterministic: exactly 40 of 200 go to b.
    seen = _split(gateway.url, 200)
    assert seen == {"a": 160, "b": 40}

    _apply(sandbox, _manifests(namespace, (0, 100), [], "1Gi"))
    _wait(lambda: follower.weights == {"a": 0, "b": 100}, 30, "the new weights")
    time.sleep(0.5)
    assert _split(gateway.url, 50) == {"b": 50}

    # Each pod is a scrape target with the labels a pod scrape carries, including its track (the echo
    # server has no /metrics, so the scrape itself fails: ``up`` is 0, but the target is there).
    _wait(
        lambda: bool(
            _query(sandbox, f'up{{namespace="{namespace}",track="candidate",pod=~"b-.*",container="echo"}}')
        ),
        30,
        "the scrape",
    )


def test_crashes_and_memory_kills_are_recorded_like_the_kubelet_does(
    sandbox: Sandbox, namespace: str, runtime: tuple[PodRunner, NginxGateway, RouteFollower]
) -> None:
    runner, gateway, _ = runtime
    _apply(sandbox, _manifests(namespace, (0, 100), [{"name": "CRASH_AFTER", "value": "3"}], "1Gi"))
    _wait(lambda: _split(gateway.url, 1)["b"] == 1, 60, "the candidate to answer")
    _split(gateway.url, 5)  # the third request makes it SIGSEGV itself
    candidate = f'namespace="{namespace}",pod=~"b-.*"'
    exit_139 = f"kube_pod_container_status_last_terminated_exitcode{{{candidate}}} == 139"
    _wait(lambda: bool(_query(sandbox, exit_139)), 30, "exit code 139 in Prometheus")
    restarts = _query(sandbox, f"kube_pod_container_status_restarts_total{{{candidate}}}")
    assert float(restarts[0]["value"][1]) >= 1
    _wait(lambda: _split(gateway.url, 1)["b"] == 1, 30, "the restarted candidate to answer")

    # A container over its memory limit is SIGKILLed and recorded as OOMKilled (137).
    sandbox.kubectl("-n", namespace, "delete", "deploy", "b", "--wait=true")
    _wait(lambda: all(c.pod.startswith("a-") for c in runner.snapshot()), 60, "the old candidate pod to go")
    _apply(sandbox, _manifests(namespace, (0, 100), [{"name": "GROW_MB", "value": "64"}], "32Mi"))
    oom = f'kube_pod_container_status_last_terminated_reason{{{candidate},reason="OOMKilled"}}'
    _wait(lambda: bool(_query(sandbox, oom)), 60, "OOMKilled in Prometheus")
    code = _query(sandbox, f"kube_pod_container_status_last_terminated_exitcode{{{candidate}}}")
    assert code[0]["value"][1] == "137"
