"""Each preset reads its system's series through the real Prometheus of the sandbox.

An exporter serves the series exactly as Istio's sidecars, the ingress-nginx controller and cAdvisor
name and label them (plus decoys a wrong query would also read: Istio's source-side reports, another
namespace, cAdvisor's pod-level cgroup); Prometheus scrapes it; the operator's source fetches blocks
with the canary's resolved queries. Each resolved query also passes `promtool check rules`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import yaml

from ferrocanary.cli.queries import resolve
from ferrocanary.local.sandbox import Sandbox
from ferrocanary.local.toolchain import Toolchain
from ferrocanary.metrics import protocol
from ferrocanary.metrics.prometheus import PrometheusSource
from ferrocanary.model import analysis, recording
from ferrocanary.model import spec as canary_spec
from tests.support.canary import install_crd
from tests.support.cli import kubectl_ferrocanary
from tests.support.http import serving

pytestmark = pytest.mark.integration

NS = "presets"
RATES = {"baseline": 40.0, "candidate": 20.0}  # requests per second as each arm serves them
ISTIO_MS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)  # Istio's default bounds (ms)
NGINX_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)  # ingress-nginx's (Prometheus' default)
DEPLOY = {"baseline": "scorer-python", "candidate": "scorer-rust"}
POD = {arm: f"{name}-5f7d8c9b4-x2k4q" for arm, name in DEPLOY.items()}
START = time.time()


def _count(arm: str) -> int:
    return int(RATES[arm] * (time.time() - START))


def _histogram(name: str, labels: str, bounds: tuple[float, ...], slot: int, total: int) -> list[str]:
    """Every request in the bucket ending at ``bounds[slot]``."""
    lines = [
        f'{name}_bucket{{{labels},le="{b:g}"}} {total if i >= slot else 0}' for i, b in enumerate(bounds)
    ]
    return [*lines, f'{name}_bucket{{{labels},le="+Inf"}} {total}', f"{name}_count{{{labels}}} {total}"]


def istio() -> str:
    lines = ["# TYPE istio_requests_total counter", "# TYPE istio_request_duration_milliseconds histogram"]
    for arm, deploy in DEPLOY.items():
        for reporter in ("destination", "source"):  # a query without reporter= would count twice
            base = (
                f'reporter="{reporter}",destination_workload="{deploy}",destination_workload_namespace="{NS}",'
                f'destination_service_name="{deploy}"'
            )
            total = _count(arm)
            errors = total // 100
            lines += [
                f'istio_requests_total{{{base},response_code="200"}} {total - errors}',
                f'istio_requests_total{{{base},response_code="503"}} {errors}',
            ]
            # baseline: 25-50 ms; candidate: 5-10 ms
            slot = ISTIO_MS.index(50) if arm == "baseline" else ISTIO_MS.index(10)
            lines += _histogram("istio_request_duration_milliseconds", base, ISTIO_MS, slot, total)
    return "\n".join(lines) + "\n"


def ingress_nginx() -> str:
    lines = ["# TYPE nginx_ingress_controller_requests counter"]
    common = 'controller_class="k8s.io/ingress-nginx",controller_namespace="ingress-nginx",ingress="scorer"'
    routes = {
        # the main Ingress's backend; the canary Ingress's requests keep service and name the upstream
        "baseline": f'{common},namespace="{NS}",service="scorer-python",canary=""',
        "candidate": f'{common},namespace="{NS}",service="scorer-python",canary="{NS}-scorer-rust-8080"',
    }
    for arm, labels in routes.items():
        total = _count(arm)
        lines += [
            f'nginx_ingress_controller_requests{{{labels},status="200"}} {total - total // 50}',
            f'nginx_ingress_controller_requests{{{labels},status="502"}} {total // 50}',
        ]
        slot = NGINX_S.index(0.1) if arm == "baseline" else NGINX_S.index(0.025)
        lines += _histogram("nginx_ingress_controller_request_duration_seconds", labels, NGINX_S, slot, total)
    # the same service name in another namespace: not this canary's
    other = f'{common},namespace="other",service="scorer-python",canary="",status="200"'
    lines.append(f"nginx_ingress_controller_requests{{{other}}} 1e6")
    return "\n".join(lines) + "\n"


def cadvisor() -> str:
    elapsed = time.time() - START
    lines = [
        "# TYPE container_cpu_usage_seconds_total counter",
        "# TYPE container_memory_working_set_bytes gauge",
    ]
    for arm, pod in POD.items():
        cpu = elapsed * (0.8 if arm == "baseline" else 0.2)
        memory = 300e6 if arm == "baseline" else 60e6
        for container in ("app", ""):  # "": the pod's own cgroup, which holds the containers again
            labels = f'namespace="{NS}",pod="{pod}",container="{container}"'
            lines += [
                f"container_cpu_usage_seconds_total{{{labels}}} {cpu:.3f}",
                f"container_memory_working_set_bytes{{{labels}}} {memory:.0f}",
            ]
    return "\n".join(lines) + "\n"


# OpenCost's node prices (per vCPU-hour and per GiB-hour, labelled as OpenCost labels them) and
# kube-state-metrics' kube_pod_info placing each pod: the Python build on an on-demand x86 node, the
# Rust build on a cheaper arm64 one, another team's pod (a decoy) on a third.
NODES = {
    "ip-10-0-1-17": ("m6i.xlarge", "amd64", 0.048, 0.0064),
    "ip-10-0-2-33": ("m7g.xlarge", "arm64", 0.0408, 0.0054),
    "ip-10-0-3-50": ("c6i.large", "amd64", 0.1, 0.01),
}
POD_NODE = {"baseline": "ip-10-0-1-17", "candidate": "ip-10-0-2-33"}


def opencost() -> str:
    lines = ["# TYPE node_cpu_hourly_cost gauge", "# TYPE node_ram_hourly_cost gauge"]
    for node, (instance_type, arch, cpu_hour, ram_hour) in NODES.items():
        labels = (
            f'instance="{node}",node="{node}",instance_type="{instance_type}",region="eu-west-1",'
            f'provider_id="aws:///eu-west-1a/i-0{node[-2:]}",arch="{arch}"'
        )
        lines += [
            f"node_cpu_hourly_cost{{{labels}}} {cpu_hour}",
            f"node_ram_hourly_cost{{{labels}}} {ram_hour}",
        ]
    lines.append("# TYPE kube_pod_info gauge")
    placed = [(NS, POD[arm], POD_NODE[arm]) for arm in POD] + [("other", POD["candidate"], "ip-10-0-3-50")]
    for namespace, pod, node in placed:
        lines.append(
            f'kube_pod_info{{namespace="{namespace}",pod="{pod}",uid="{abs(hash((namespace, pod)))}",'
            f'host_ip="10.0.0.1",pod_ip="10.244.0.7",node="{node}",created_by_kind="ReplicaSet",'
            f'created_by_name="{pod.rsplit("-", 1)[0]}",priority_class="",host_network="false"}} 1'
        )
    return "\n".join(lines) + "\n"


EXPOSITIONS: dict[str, Callable[[], str]] = {
    "istio": istio,
    "ingress-nginx": ingress_nginx,
    "cadvisor": cadvisor,
}


def _handler(body: Callable[[], str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = body().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def scraped(sandbox: Sandbox) -> Iterator[None]:
    """Prometheus scrapes the systems' series (no target labels that could clash with theirs)."""
    with (
        serving(_handler(istio)) as a,
        serving(_handler(ingress_nginx)) as b,
        serving(_handler(cadvisor)) as c,
        serving(_handler(opencost)) as d,
    ):
        jobs = {"presets-istio": a, "presets-nginx": b, "presets-cadvisor": c, "presets-opencost": d}
        for job, target in jobs.items():
            sandbox.add_scrape_target(job, [target])
        try:
            _wait_scraped(sandbox, tuple(jobs))
            time.sleep(16)  # history for three 3 s blocks ending 3 s ago, and a first scrape before them
            yield
        finally:
            for job in jobs:
                sandbox.remove_scrape_target(job)


def _spec(preset: str) -> canary_spec.CanarySpec:
    arms = {arm: {"deployment": name, "service": name} for arm, name in DEPLOY.items()}
    return canary_spec.parse({**arms, "analysis": {"interval": "10s", "metrics": {"preset": preset}}})


def _window(spec: canary_spec.CanarySpec, blocks: int = 3, interval: float = 3.0) -> protocol.Window:
    """``blocks`` blocks of ``interval`` seconds, ending at least two scrapes ago."""
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=3)
    start = end - timedelta(seconds=blocks * interval)
    return protocol.Window(
        start,
        end,
        interval,
        protocol.ArmSelectors.of(NS, spec),
        resolved=protocol.resolved_queries(NS, spec),
    )


def _fetch(sandbox: Sandbox, preset: str) -> recording.Recording:
    return PrometheusSource(sandbox.prometheus_url).fetch(_window(_spec(preset)))


def _wait_scraped(sandbox: Sandbox, jobs: tuple[str, ...]) -> None:
    query = urllib.parse.urlencode({"query": f'count(up{{job=~"{"|".join(jobs)}"}} == 1)'})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{sandbox.prometheus_url}/api/v1/query?{query}") as r,
        ):
            result = json.load(r)["data"]["result"]
            if result and float(result[0]["value"][1]) == len(jobs):
                return
        time.sleep(0.5)
    raise RuntimeError("Prometheus does not scrape the preset exporters")


@pytest.mark.usefixtures("scraped")
def test_istio_reads_destination_reports_per_workload_in_seconds(sandbox: Sandbox) -> None:
    rec = _fetch(sandbox, "istio")
    assert rec.blocks
    for block in rec.blocks:
        assert "requests" not in block.missing
        assert "latency" not in block.missing
        # the destination's reports only: ~40 and ~20 per second over 3 s, not twice that
        assert 90 <= block.baseline.requests <= 150
        assert 40 <= block.candidate.requests <= 80
    bounds = rec.latency_bucket_bounds
    assert any(math.isclose(b, 0.05) for b in bounds)  # 50 ms read as 0.05 s
    last = rec.blocks[-1]
    assert _slot(last.baseline.latency_counts) == _index(bounds, 0.05)
    assert _slot(last.candidate.latency_counts) == _index(bounds, 0.01)


@pytest.mark.usefixtures("scraped")
def test_ingress_nginx_splits_the_arms_by_the_canary_label(sandbox: Sandbox) -> None:
    rec = _fetch(sandbox, "ingress-nginx")
    for block in rec.blocks:
        assert 90 <= block.baseline.requests <= 150  # not the other namespace's million
        assert 40 <= block.candidate.requests <= 80
        assert block.baseline.errors <= block.baseline.requests / 20
    last = rec.blocks[-1]
    assert _slot(last.baseline.latency_counts) == _index(rec.latency_bucket_bounds, 0.1)
    assert _slot(last.candidate.latency_counts) == _index(rec.latency_bucket_bounds, 0.025)


@pytest.mark.usefixtures("scraped")
def test_cadvisor_reads_containers_cpu_and_memory_once(sandbox: Sandbox) -> None:
    rec = _fetch(sandbox, "cadvisor")
    for block in rec.blocks:
        assert not {"cpu", "memory", "pods"} & set(block.missing)
        # 0.8 and 0.2 CPU seconds per second over 3 s: the pod-level cgroup is not added again
        assert block.baseline.cpu_seconds == pytest.approx(2.4, rel=0.25)
        assert block.candidate.cpu_seconds == pytest.approx(0.6, rel=0.25)
        assert block.baseline.memory_bytes == pytest.approx(300e6)
        assert block.candidate.memory_bytes == pytest.approx(60e6)
        assert (block.baseline.pods, block.candidate.pods) == (1, 1)


@pytest.mark.usefixtures("scraped")
def test_opencost_prices_each_build_by_the_nodes_its_pods_run_on(sandbox: Sandbox) -> None:
    rec = _fetch(sandbox, "cadvisor")
    # the other team's pod of the same name on the dearest node is not this canary's
    assert rec.prices == {
        "baseline": {"cpuHour": pytest.approx(0.048), "memoryGiBHour": pytest.approx(0.0064)},
        "candidate": {"cpuHour": pytest.approx(0.0408), "memoryGiBHour": pytest.approx(0.0054)},
    }
    pricing = analysis.with_prices(_spec("cadvisor").settings, rec.prices).pricing
    assert pricing.source == "opencost"
    assert pricing.of("candidate") == pytest.approx((0.0408, 0.0054))
    # pods OpenCost's series do not place: the spec's static prices stay
    unpriced = PrometheusSource(sandbox.prometheus_url).fetch(
        dataclasses.replace(
            _window(_spec("cadvisor")), selectors=protocol.ArmSelectors.of("elsewhere", _spec("cadvisor"))
        )
    )
    assert unpriced.prices == {}


@pytest.mark.toolchain
@pytest.mark.parametrize("preset", ["istio", "ingress-nginx", "cadvisor"])
def test_every_resolved_query_of_the_examples_passes_promtool(preset: str, tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "crds" / "examples" / f"metrics-{preset}.yaml"
    result = resolve(yaml.safe_load(example.read_text()))
    rules = [
        {"record": f"ferrocanary:check:{arm}:{signal}", "expr": query}
        for arm, by_signal in result["queries"].items()
        for signal, query in by_signal.items()
    ]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "resolved", "rules": rules}]}))
    checked = subprocess.run(
        [str(Toolchain().path("prometheus", "promtool")), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout


def test_kubectl_ferrocanary_queries_resolves_a_canary_and_its_template_in_the_cluster(
    sandbox: Sandbox, namespace: str
) -> None:
    install_crd(sandbox)  # both CRDs
    root = Path(__file__).resolve().parents[2]
    sandbox.kubectl("apply", "-n", namespace, "-f", str(root / "crds" / "examples" / "metric-template.yaml"))
    shown = kubectl_ferrocanary(sandbox, "queries", "scorer-templated", "-n", namespace, "--json")
    assert shown.returncode == 0, shown.stderr
    result = json.loads(shown.stdout)
    assert result["preset"] == "istio"
    assert result["queries"]["candidate"]["requests"].startswith("istio_requests_total{")
    assert f'destination_workload_namespace="{namespace}"' in result["queries"]["candidate"]["requests"]
    assert set(result["customKpis"]) == {"upstream-calls-per-request"}
    # the same template as the platform ships it in its own namespace, referenced by namespace
    shared = f"{namespace}-platform"
    sandbox.kubectl("create", "namespace", shared)
    try:
        example = root / "crds" / "examples" / "metric-template.yaml"
        template = next(d for d in yaml.safe_load_all(example.read_text()) if d["kind"] == "MetricTemplate")
        template["metadata"]["namespace"] = shared
        sandbox.kubectl("apply", "-f", "-", input_text=json.dumps(template))
        ref = {
            "spec": {"analysis": {"metrics": {"templateRef": {"name": "mesh-defaults", "namespace": shared}}}}
        }
        sandbox.kubectl(
            "patch", "-n", namespace, "rustcanary", "scorer-templated", "--type=merge", "-p", json.dumps(ref)
        )
        sandbox.kubectl("delete", "-n", namespace, "metrictemplate", "mesh-defaults")
        shown = kubectl_ferrocanary(sandbox, "queries", "scorer-templated", "-n", namespace, "--json")
        assert shown.returncode == 0, shown.stderr
        # filled in for the canary's own namespace, wherever the template lives
        requests = json.loads(shown.stdout)["queries"]["candidate"]["requests"]
        assert f'destination_workload_namespace="{namespace}"' in requests
        sandbox.kubectl("delete", "-n", shared, "metrictemplate", "mesh-defaults")
    finally:
        sandbox.kubectl("delete", "namespace", shared, "--wait=false", check=False)
    missing = kubectl_ferrocanary(sandbox, "queries", "scorer-templated", "-n", namespace)
    assert missing.returncode == 1
    assert "mesh-defaults" in missing.stderr


def _slot(counts: tuple[float, ...]) -> int:
    """The bucket holding the most requests."""
    return max(range(len(counts)), key=lambda i: counts[i])


def _index(bounds: tuple[float, ...], bound: float) -> int:
    return next(i for i, b in enumerate(bounds) if math.isclose(b, bound))
