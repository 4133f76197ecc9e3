"""A fleet of synthetic canaries on the sandbox: kwok pods, one synthetic exporter, the real operator.

What ``bench scale`` and ``bench faults`` share: kwok Nodes sized for the pods, two Deployments per
canary (the Python build and the Rust build), one ``bench.synthetic`` exporter process serving every
arm's metrics-contract series under pod names of the arm's Deployment, a scrape job of its own in
the sandbox's Prometheus (5 s), and ``ferrocanary run`` as its own process. Half the Rust builds
clearly win (their canaries should be Promoted), half clearly regress p99 latency (RolledBack).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from ferrocanary.bench import servers
from ferrocanary.kube import canaries, rest
from ferrocanary.local.launch import FAKE_NODE_ANNOTATION
from ferrocanary.local.sandbox import Sandbox

SCRAPE = "5s"
PODS_PER_NODE = 100
MIN_BLOCKS = 6  # the judge's default is 20; 6 lets a canary decide within minutes

# The Python build, a Rust build that wins every KPI, and one that regresses p99 latency.
PYTHON = {"median_seconds": 0.020, "cpu_per_request": 0.004, "memory_bytes": 180e6}
RUST_WIN = {"median_seconds": 0.007, "cpu_per_request": 0.0012, "memory_bytes": 60e6}
RUST_SLOW = {"median_seconds": 0.060, "cpu_per_request": 0.0012, "memory_bytes": 60e6}
EXPECTED = {"win": "Promoted", "slow": "RolledBack"}


def kind_of(index: int) -> str:
    """Even canaries win, odd ones regress: half each, interleaved."""
    return "win" if index % 2 == 0 else "slow"


PER_APPLY = 20  # objects per kubectl apply


def apply_list(box: Sandbox, items: Sequence[Mapping[str, Any]]) -> None:
    """``kubectl apply`` of ``items`` in slices: one call per 100 RustCanaries passed its 120 s timeout at
    1,000 canaries on a loaded machine (the operator already at work on the first ones)."""
    for first in range(0, len(items), PER_APPLY):
        doc = {"apiVersion": "v1", "kind": "List", "items": list(items[first : first + PER_APPLY])}
        box.kubectl("apply", "-f", "-", input_text=json.dumps(doc))


def collection(item: Mapping[str, Any]) -> str:
    """The API path of ``item``'s collection (a namespaced object of a known group)."""
    namespace = item["metadata"]["namespace"]
    if item["kind"] == "Deployment":
        return f"/apis/apps/v1/namespaces/{namespace}/deployments"
    if item["kind"] == canaries.KIND:
        return canaries.path(namespace)
    raise ValueError(f"no collection known for kind {item['kind']}")


CREATORS = 4  # requests in flight while creating a fleet


def create_all(api: rest.JsonApi, items: Sequence[Mapping[str, Any]]) -> None:
    """POST every item (a few at a time): at 1,000 canaries, ``kubectl apply`` 20 objects per call
    (a process, discovery, then a GET and a create per object) took most of the setup's minutes."""
    with ThreadPoolExecutor(CREATORS) as pool:
        for _ in pool.map(lambda item: api.post(collection(item), dict(item)), items):
            pass


def nodes(box: Sandbox, count: int, prefix: str = "kwok-scale") -> None:
    """``count`` kwok Nodes (big enough for ``PODS_PER_NODE`` pods each), created or kept."""
    items = [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": f"{prefix}-{i}",
                "annotations": {FAKE_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {"type": "kwok", "kubernetes.io/hostname": f"{prefix}-{i}"},
            },
            "status": {
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            },
        }
        for i in range(count)
    ]
    apply_list(box, items)


def deployment(namespace: str, name: str, app: str, build: str, replicas: int = 1) -> dict[str, Any]:
    """A Deployment of one build whose pods only kwok nodes take (they run nothing)."""
    labels = {"app": app, "build": build}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "scorer", "image": f"registry.invalid/scorer-{build}:1"}],
                    "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists"}],
                },
            },
        },
    }


def canary_object(
    namespace: str, name: str, interval: int, routing: Mapping[str, Any], prometheus: Mapping[str, str]
) -> dict[str, Any]:
    """A RustCanary of the fleet: the two Deployments, one step at 50 %, 6 blocks of ``interval``
    seconds before a verdict, the given ``trafficRouting`` and ``analysis.prometheus``."""
    return {
        "apiVersion": canaries.API_VERSION,
        "kind": canaries.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "baseline": {"deployment": f"{name}-python"},
            "candidate": {"deployment": f"{name}-rust"},
            "trafficRouting": dict(routing),
            "steps": {"weights": [50], "minDwell": f"{2 * interval}s"},
            "analysis": {
                "interval": f"{interval}s",
                "warmup": "0s",
                "maxDuration": "2h",
                "minBlocks": MIN_BLOCKS,
                "prometheus": dict(prometheus),
            },
        },
    }


def running_pods(box: Sandbox, namespaces: Iterable[str]) -> dict[tuple[str, str, str], str]:
    """(namespace, app, build) -> a Running pod's name, for the pods in ``namespaces``."""
    found: dict[tuple[str, str, str], str] = {}
    wanted = set(namespaces)
    listed = json.loads(box.kubectl("get", "pods", "-A", "-o", "json"))
    for pod in listed.get("items", []):
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        if meta["namespace"] in wanted and (pod.get("status") or {}).get("phase") == "Running":
            found[(meta["namespace"], labels.get("app", ""), labels.get("build", ""))] = meta["name"]
    return found


def wait_for_pods(
    box: Sandbox, namespaces: Iterable[str], count: int, timeout: float
) -> dict[tuple[str, str, str], str]:
    """Wait until ``count`` (namespace, app, build) arms have a Running pod; returns their names."""
    wanted = list(namespaces)
    deadline = time.monotonic() + timeout
    while True:
        pods = running_pods(box, wanted)
        if len(pods) >= count:
            return pods
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(pods)} of {count} pods Running on the kwok nodes")
        time.sleep(3)


def arms(
    pods: Mapping[tuple[str, str, str], str], kinds: Mapping[tuple[str, str], str], rps: float
) -> list[dict[str, Any]]:
    """The exporter's arm configs: each pod's build modelled as its canary's kind says."""
    out = []
    for (namespace, app, build), pod in sorted(pods.items()):
        kind = kinds.get((namespace, app))
        if kind is None:
            continue
        model = PYTHON if build == "python" else (RUST_WIN if kind == "win" else RUST_SLOW)
        track = "baseline" if build == "python" else "candidate"
        out.append({"namespace": namespace, "pod": pod, "track": track, "rps": rps, **model})
    return out


def start_exporter(
    box: Sandbox, configs: list[dict[str, Any]], port: int, name: str, refresh: float = 5.0
) -> subprocess.Popen[bytes]:
    """``bench.synthetic`` serving ``configs`` on 127.0.0.1:port, new counts every ``refresh``
    seconds; its log in the sandbox's logs."""
    config = box.dir / f"{name}-arms.json"
    config.write_text(json.dumps(configs))
    with (box.logs_dir / f"{name}-exporter.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "ferrocanary.bench.synthetic", str(config), str(port), str(refresh)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def _prometheus_config(box: Sandbox) -> Path:
    return box.dir / "prometheus" / "prometheus.yml"


def _reload_prometheus(box: Sandbox) -> None:
    state = box.load_state()
    if state is not None and "prometheus" in state.components:
        os.kill(state.components["prometheus"].pid, signal.SIGHUP)


def add_scrape_job(box: Sandbox, port: int, job: str, scrape: str = SCRAPE) -> None:
    """A job of its own, scraped every ``scrape`` (5 s: the sandbox's default 1 s is for the demo's
    arms, and costs Prometheus five times as much with many canaries)."""
    path = _prometheus_config(box)
    config = yaml.safe_load(path.read_text())
    jobs = [j for j in config["scrape_configs"] if j["job_name"] != job]
    jobs.append(
        {
            "job_name": job,
            "scrape_interval": scrape,
            "scrape_timeout": scrape,
            "honor_labels": True,
            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
        }
    )
    config["scrape_configs"] = jobs
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    _reload_prometheus(box)


def remove_scrape_job(box: Sandbox, job: str) -> None:
    path = _prometheus_config(box)
    if not path.is_file():
        return
    config = yaml.safe_load(path.read_text())
    config["scrape_configs"] = [j for j in config["scrape_configs"] if j["job_name"] != job]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    _reload_prometheus(box)


def wait_for_series(box: Sandbox, count: int, job: str) -> None:
    """Wait until Prometheus has scraped ``count`` arms of ``job``."""
    query = f'count(process_cpu_seconds_total{{job="{job}"}})'
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            answer = servers.get_json(f"{box.prometheus_url}/api/v1/query?query={query.replace(' ', '%20')}")
            result = answer["data"]["result"]
            if result and int(float(result[0]["value"][1])) >= count:
                return
        except (OSError, KeyError, ValueError):
            pass
        time.sleep(2)
    raise RuntimeError(f"Prometheus did not scrape the synthetic arms of job {job} within 2 minutes")


def start_operator(
    box: Sandbox,
    log_name: str,
    args: Sequence[str] = ("-A",),
    env: Mapping[str, str] | None = None,
    kubeconfig: Path | None = None,
) -> subprocess.Popen[bytes]:
    """``ferrocanary run ARGS`` in its own process against the sandbox (or ``kubeconfig``)."""
    environ = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig or box.kubeconfig),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    with (box.logs_dir / log_name).open("ab") as log:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "ferrocanary"), "run", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=environ,
        )
