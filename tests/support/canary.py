"""Set up a canary on the real sandbox: the two builds, their routing object, a live exporter that
Prometheus scrapes, and the RustCanary itself; then watch it through the API like a person would.

Everything here talks to the real kube-apiserver and the real Prometheus of the sandbox; the only
process of our own is the exporter (support/exporter.py), which plays the two builds' traffic.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ferrocanary.kube import canaries, rest
from ferrocanary.local import fleet, processes
from ferrocanary.local.sandbox import Sandbox
from ferrocanary.local.toolchain import Toolchain
from ferrocanary.model import analysis
from tests.support import arms, waiting

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "rustcanaries.ferrocanary.io.yaml"
TEMPLATE_CRD = REPO / "crds" / "metrictemplates.ferrocanary.io.yaml"
TERMINAL = ("Promoted", "RolledBack", "Inconclusive", "Invalid")


def _time(text: str | None) -> datetime | None:
    """A time as status writes it (RFC 3339, whole seconds, 'Z')."""
    return None if not text else datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def wait_established(sandbox: Sandbox, crd: str, timeout: float = 60) -> None:
    """Wait until the apiserver serves ``crd``. Polled rather than `kubectl wait`, which fails at once
    ("<nil> is of the type <nil>") when it runs before a CRD just created has any status."""
    jsonpath = '{.status.conditions[?(@.type=="Established")].status}'
    waiting.wait_for(
        lambda: sandbox.kubectl("get", f"crd/{crd}", "-o", f"jsonpath={jsonpath}", check=False).strip(),
        timeout,
        f"CRD {crd} Established",
        until=lambda established: established == "True",
    )


def install_crd(sandbox: Sandbox) -> None:
    """The operator's CRDs: RustCanary, and the MetricTemplate a RustCanary's metrics may reference."""
    sandbox.kubectl("apply", "-f", str(CRD))
    sandbox.kubectl("apply", "-f", str(TEMPLATE_CRD))
    wait_established(sandbox, "rustcanaries.ferrocanary.io")
    wait_established(sandbox, "metrictemplates.ferrocanary.io")


def install_istio_crd(sandbox: Sandbox) -> None:
    """Istio's own VirtualService CRD (istio.io/api, pinned in tools/versions.env, cached locally)."""
    sandbox.kubectl("apply", "--server-side", "-f", str(Toolchain().path("istio-api")))
    wait_established(sandbox, "virtualservices.networking.istio.io")


@contextlib.contextmanager
def fresh_namespaces(box: Sandbox, *names: str) -> Iterator[None]:
    """``names`` created for the ``with`` block and deleted afterwards (without waiting), whatever happens."""
    for name in names:
        box.kubectl("create", "namespace", name)
    try:
        yield
    finally:
        for name in names:
            box.kubectl("delete", "namespace", name, "--wait=false", check=False)


def analysis_only(namespace: str, name: str = "scorer") -> dict[str, Any]:
    """The smallest RustCanary: the reference workload's two Deployments, no traffic moved, defaults."""
    return {
        "apiVersion": "ferrocanary.io/v1alpha1",
        "kind": "RustCanary",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "baseline": {"deployment": "scorer-python"},
            "candidate": {"deployment": "scorer-rust"},
            "trafficRouting": {"none": {}},
            "analysis": {},
        },
    }


def deployment(namespace: str, name: str, build: str, replicas: int) -> dict[str, Any]:
    return fleet.deployment(namespace, name, "scorer", build, replicas)


def service(namespace: str, name: str, selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": selector, "ports": [{"port": 8080, "targetPort": 8080}]},
    }


def http_route(namespace: str, name: str, backend: str) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "parentRefs": [{"name": "public-gateway"}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}],
                    "backendRefs": [{"name": backend, "port": 8080}],
                }
            ],
        },
    }


@dataclass
class Canary:
    """One canary under test: its objects, its exporter process, and the way to read its status."""

    sandbox: Sandbox
    api: rest.JsonApi
    namespace: str
    name: str
    router: str  # "gatewayAPI", "replicas", or "none" (analysis only: a fixed split, none_weight)
    candidate: arms.ArmModel
    rps: float = 2000.0
    spec_overrides: dict[str, Any] = field(default_factory=dict)
    # "contract", or the system whose series the exporter plays (support/exporter.py); coarse: its
    # default latency buckets
    dialect: str = "contract"
    coarse: bool = False
    db_calls_per_request: dict[str, float] = field(default_factory=dict)  # arm -> db_queries_total rate
    # real pods (on a real node) whose names the exporter's series carry, instead of made-up ones
    pod_names: dict[str, str] = field(default_factory=dict)
    none_weight: float = 50.0  # router "none": the candidate's fixed share of traffic in percent
    exporter_pid: int = 0
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def baseline_deploy(self) -> str:
        return f"{self.name}-python"

    @property
    def candidate_deploy(self) -> str:
        return f"{self.name}-rust"

    def _create(self, path: str, body: dict[str, Any]) -> None:
        self.api.post(path, body)

    def create_workload(self) -> None:
        ns = self.namespace
        apps = f"/apis/apps/v1/namespaces/{ns}/deployments"
        gateway = self.router == "gatewayAPI"
        self._create(apps, deployment(ns, self.baseline_deploy, "python", 4 if gateway else 10))
        self._create(apps, deployment(ns, self.candidate_deploy, "rust", 4 if gateway else 0))
        if gateway:
            core = f"/api/v1/namespaces/{ns}/services"
            self._create(core, service(ns, self.baseline_deploy, {"app": "scorer", "build": "python"}))
            self._create(core, service(ns, self.candidate_deploy, {"app": "scorer", "build": "rust"}))
            self._create(
                f"/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes",
                http_route(ns, self.name, self.baseline_deploy),
            )

    def _split(self) -> dict[str, Any]:
        """How the exporter splits traffic: as the routing object in the cluster says, or fixed."""
        if self.router == "none":
            return {"kind": "fixed", "weight": self.none_weight}
        return (
            {
                "kind": "httproute",
                "namespace": self.namespace,
                "name": self.name,
                "baseline": self.baseline_deploy,
                "candidate": self.candidate_deploy,
            }
            if self.router == "gatewayAPI"
            else {
                "kind": "deployments",
                "namespace": self.namespace,
                "baseline": self.baseline_deploy,
                "candidate": self.candidate_deploy,
            }
        )

    def start_exporter(self, workdir: Path) -> None:
        ready = workdir / f"{self.name}-ready.json"
        ready.unlink(missing_ok=True)
        split = self._split()
        config = {
            "rps": self.rps,
            "seed": abs(hash(self.name)) % 10_000,
            "baseline": asdict(arms.PYTHON),
            "candidate": asdict(self.candidate),
            "split": split,
            "kubeconfig": str(self.sandbox.kubeconfig),
            "ready_file": str(ready),
            "dialect": self.dialect,
            "db_calls_per_request": self.db_calls_per_request,
            "coarse": self.coarse,
            "namespace": self.namespace,
            "ingress": self.name,
            "deployments": {"baseline": self.baseline_deploy, "candidate": self.candidate_deploy},
            "services": {"baseline": self.baseline_deploy, "candidate": self.candidate_deploy},
            "pods": {"baseline": self._pod("baseline"), "candidate": self._pod("candidate")},
        }
        config_path = workdir / f"{self.name}-exporter.json"
        config_path.write_text(json.dumps(config))
        with (workdir / f"{self.name}-exporter.log").open("w") as log:  # the child keeps its own copy
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.support.exporter", str(config_path)],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.sandbox.env()},
            )
        self.exporter_pid = proc.pid
        # Its imports alone took over 30 s on a machine at load 20 (two test workers, builds beside).
        deadline = time.monotonic() + 90
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"exporter did not start: {(workdir / f'{self.name}-exporter.log').read_text()}"
                )
            time.sleep(0.1)
        self.ports = json.loads(ready.read_text())
        for track in ("baseline", "candidate"):
            # as a cluster's scrape labels a pod's series: the default selectors (and the
            # dashboards) read each arm by its own Deployment's pods
            labels = {"namespace": self.namespace, "pod": self._pod(track)}
            if self.dialect == "contract":  # Istio's and ingress-nginx's series carry no track, and
                labels |= {"canary": self.name, "track": track}  # ingress-nginx's own "canary" label
            self.sandbox.add_scrape_target(self._job(track), [f"127.0.0.1:{self.ports[track]}"], labels)
        # Start the canary only once Prometheus scrapes both arms, as a team would (and so the first
        # blocks are not read from series that appear halfway through them).
        jobs = "|".join(self._job(track) for track in ("baseline", "candidate"))
        query = f'count(up{{job=~"{jobs}"}} == 1)'
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            url = f"{self.sandbox.prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as reply:
                result = json.load(reply)["data"]["result"]
                if result and float(result[0]["value"][1]) == 2:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"Prometheus does not scrape the exporter of {self.name}")

    def _pod(self, track: str) -> str:
        if track in self.pod_names:
            return self.pod_names[track]
        return f"{self.baseline_deploy if track == 'baseline' else self.candidate_deploy}-5f7d8c9b4-x2k4q"

    def _job(self, track: str) -> str:
        return f"{self.namespace}-{self.name}-{track}"

    def spec(self) -> dict[str, Any]:
        gateway = self.router == "gatewayAPI"
        sel = f'namespace="{self.namespace}",canary="{self.name}"'
        spec: dict[str, Any] = {
            "baseline": {
                "deployment": self.baseline_deploy,
                **({"service": self.baseline_deploy} if gateway else {}),
            },
            "candidate": {
                "deployment": self.candidate_deploy,
                **({"service": self.candidate_deploy} if gateway else {}),
            },
            "service": {"name": self.name, "port": 8080},
            "trafficRouting": {"gatewayAPI": {"httpRoute": self.name}}
            if gateway
            else {"none": {"candidateWeight": self.none_weight}}
            if self.router == "none"
            else {"replicas": {"total": 10}},
            "steps": {"weights": [10, 30, 50], "minDwell": "12s"},
            "analysis": {
                "interval": "3s",
                "warmup": "6s",
                "maxDuration": "10m",
                "minBlocks": 6,
                "prometheus": {"address": self.sandbox.prometheus_url, "lag": "2s", "timeout": "5s"},
                "selectors": {"baseline": f'{sel},track="baseline"', "candidate": f'{sel},track="candidate"'},
            },
        }
        for key, value in self.spec_overrides.items():
            spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) else value
        return spec

    def apply(self) -> None:
        body = {
            "apiVersion": canaries.API_VERSION,
            "kind": canaries.KIND,
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": self.spec(),
        }
        self.api.post(canaries.path(self.namespace), body)

    @property
    def obj(self) -> dict[str, Any]:
        found = canaries.get(self.api, self.namespace, self.name)
        assert found is not None, f"RustCanary {self.namespace}/{self.name} is gone"
        return found

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.obj.get("status") or {})

    def wait(self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        def brief(status: dict[str, Any]) -> dict[str, Any]:
            keys = ("phase", "stepIndex", "weight", "decision", "decisionReason", "verdict", "lastTickAt")
            return {k: status.get(k) for k in keys}

        return waiting.wait_for(
            lambda: self.status, timeout, what, until=predicate, describe=brief, interval=1.0
        )

    def seconds(self, section: str, key: str) -> float:
        """A duration of this canary's spec in seconds, e.g. ``seconds("steps", "minDwell")``."""
        return analysis.parse_duration(self.spec()[section][key], f"spec.{section}.{key}")

    def analysed_past_dwell(self, status: dict[str, Any]) -> bool:
        """The operator has analysed the current step after its minDwell ran out, when a healthy canary
        moves on (status times are whole seconds, hence the extra second)."""
        tick, started = _time(status.get("lastTickAt")), _time(status.get("stepStartedAt"))
        dwell = timedelta(seconds=self.seconds("steps", "minDwell") + 1)
        return tick is not None and started is not None and tick >= started + dwell

    def wait_analyses(self, count: int, since: dict[str, Any], timeout: float) -> dict[str, Any]:
        """The status once the operator has analysed ``count`` more times than in ``since``."""
        seen: set[str] = set()

        def analyses(status: dict[str, Any]) -> bool:
            tick = status.get("lastTickAt")
            if tick and tick != since.get("lastTickAt"):
                seen.add(tick)
            return len(seen) >= count

        return self.wait(analyses, timeout, f"{count} more analyses")

    def next_analyses_due(self, status: dict[str, Any], count: int) -> datetime:
        """When a running operator would have analysed ``count`` more times after ``status``."""
        tick = _time(status.get("lastTickAt"))
        assert tick is not None, f"no analysis yet: {status}"
        return tick + timedelta(seconds=count * self.seconds("analysis", "interval") + 1)

    def wait_terminal(self, timeout: float = 300) -> dict[str, Any]:
        return self.wait(lambda s: s.get("phase") in TERMINAL, timeout, "a terminal phase")

    def annotate(self, action: str) -> None:
        self.sandbox.kubectl(
            "-n",
            self.namespace,
            "annotate",
            "--overwrite",
            f"rustcanary/{self.name}",
            f"{canaries.ACTION_ANNOTATION}={action}",
        )

    def events(self) -> list[dict[str, Any]]:
        listing = self.api.get(
            f"/api/v1/namespaces/{self.namespace}/events?fieldSelector=involvedObject.name%3D{self.name}"
        )
        items = sorted(
            listing.get("items", []), key=lambda e: (e.get("lastTimestamp") or "", e["metadata"]["name"])
        )
        return items

    def reasons(self) -> list[str]:
        return [e["reason"] for e in self.events()]

    def route_weights(self) -> dict[str, int]:
        """Each backend's share of the first rule in percent (weights as written are relative: a
        rolled-back route is the team's own again, often one backendRef with no weight at all)."""
        route = self.api.get(
            f"/apis/gateway.networking.k8s.io/v1/namespaces/{self.namespace}/httproutes/{self.name}"
        )
        refs = route["spec"]["rules"][0]["backendRefs"]
        weights = {ref["name"]: int(ref.get("weight", 1)) for ref in refs}
        total = sum(weights.values()) or 1
        return {name: round(100 * weight / total) for name, weight in weights.items()}

    def route_backend_refs(self) -> list[dict[str, Any]]:
        route = self.api.get(
            f"/apis/gateway.networking.k8s.io/v1/namespaces/{self.namespace}/httproutes/{self.name}"
        )
        refs: list[dict[str, Any]] = route["spec"]["rules"][0]["backendRefs"]
        return refs

    def replicas(self) -> tuple[int, int]:
        def read(name: str) -> int:
            dep = self.api.get(f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{name}")
            return int(dep["spec"]["replicas"])

        return read(self.baseline_deploy), read(self.candidate_deploy)

    def panic(self) -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['candidate']}/panic", timeout=5) as reply:
            reply.read()

    def delete(self, timeout: float = 60) -> None:
        """Delete the RustCanary and wait until the operator's finalizer let it go."""
        self.sandbox.kubectl(
            "-n", self.namespace, "delete", f"rustcanary/{self.name}", "--wait=false", "--ignore-not-found"
        )
        deadline = time.monotonic() + timeout
        while canaries.get(self.api, self.namespace, self.name) is not None:
            if time.monotonic() > deadline:
                raise AssertionError(f"RustCanary {self.name} not released within {timeout}s")
            time.sleep(0.5)

    def stop(self) -> None:
        for track in ("baseline", "candidate"):
            self.sandbox.remove_scrape_target(self._job(track))
        if self.exporter_pid:
            processes.stop(self.exporter_pid, sys.executable)
            self.exporter_pid = 0


@contextlib.contextmanager
def running(canary: Canary, workdir: Path) -> Iterator[Canary]:
    """The canary's workload and exporter for the ``with`` block. On the way out (the operator still
    running) the RustCanary is deleted so its finalizer is released, and the exporter stopped by pid."""
    canary.create_workload()
    try:
        canary.start_exporter(workdir)
        yield canary
    finally:
        try:
            canary.delete()
        except AssertionError:
            drop_finalizers(canary.api, canary.namespace, canary.name)
        finally:
            canary.stop()


def drop_finalizers(api: rest.JsonApi, namespace: str, name: str) -> None:
    """After a test whose operator is gone: let the namespace be deleted."""
    with contextlib.suppress(rest.KubeError):
        api.patch(canaries.path(namespace, name), {"metadata": {"finalizers": None}})


def assert_resumed_to_the_same_promotion(canary: Canary, status: dict[str, Any], mid: dict[str, Any]) -> None:
    """``status`` is the clear win's ending, reached by the same canary as ``mid`` (not a restart from
    scratch): same start, the same step history, and all traffic on the candidate."""
    assert status["phase"] == "Promoted", status.get("verdictReason")
    assert status["verdict"] == "Promote"  # the verdict of the uninterrupted clear win
    assert status["startedAt"] == mid["startedAt"]  # the same canary, not a restart from scratch
    assert [s["startedAt"] for s in status["steps"][: len(mid["steps"])]] == [
        s["startedAt"] for s in mid["steps"]
    ]
    assert canary.route_weights() == {f"{canary.name}-python": 0, f"{canary.name}-rust": 100}
