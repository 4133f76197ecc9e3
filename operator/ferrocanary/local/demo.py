"""`ferrocanary demo`: a full canary of the reference workload on the one-machine sandbox.

What runs, and what stands in for what:

- the sandbox (``local up``): real etcd, kube-apiserver, controllers, scheduler, kwok, Prometheus;
- the RustCanary CRD and the workload's manifests (workloads/k8s) applied with the real kubectl;
  kwok makes the pods Running on a fake node;
- the real Python build and the real Rust build run as local processes, one per pod
  (``local.pods``: the container runtime stand-in), scraped by Prometheus with the pods' labels;
- a real nginx follows the HTTPRoute's weights (``local.gateway``), and an open-loop
  constant-rate load generator sends traffic through it;
- the operator itself (``ferrocanary run``) as a separate process, scraped too;
- at the end: the verdict, a Markdown report with plots, and optionally the recording.

Everything started here is stopped on the way out, also on Ctrl-C and on failure; the sandbox is
stopped too unless it was already up before the demo.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ferrocanary.bench import corpus, loadgen
from ferrocanary.kube import client, rest
from ferrocanary.local import processes
from ferrocanary.local.gateway import NginxGateway, RouteFollower
from ferrocanary.local.pods import PodRunner
from ferrocanary.local.sandbox import Sandbox
from ferrocanary.local.toolchain import repo_root

TERMINAL_PHASES = ("Promoted", "RolledBack", "Inconclusive", "Invalid")
IMAGES = {"textscore:python": "python", "textscore:rust": "rust"}  # image (workloads/k8s) -> build
GROUP, VERSION, PLURAL = "ferrocanary.io", "v1alpha1", "rustcanaries"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    candidate_env: Mapping[str, str]
    expected_phase: str
    expected_words: tuple[str, ...]  # what the verdict's reason must mention


SCENARIOS: dict[str, Scenario] = {
    "promote": Scenario("promote", "the real Rust build", {}, "Promoted", ()),
    "regression": Scenario(
        "regression",
        "the Rust build with a tail regression: 5% of requests spin ~50 ms (fault mode slow)",
        # A uniformly slower build would breach the p50 guard first (Python's tail is 5x its median,
        # the spin's is not); a tail regression is what misses p99 while the median stays fast.
        {
            "TEXTSCORE_FAULT": "slow",
            "TEXTSCORE_FAULT_SLOW_RATE": "0.05",
            "TEXTSCORE_FAULT_SLOW_NS_PER_FEATURE": "6000",
        },
        "RolledBack",
        ("p99",),
    ),
    "crash": Scenario(
        "crash",
        "the Rust build crashing with SIGSEGV (fault mode crash)",
        {"TEXTSCORE_FAULT": "crash", "TEXTSCORE_FAULT_CRASH_AFTER": "50"},
        "RolledBack",
        ("fault",),
    ),
}


@dataclass(frozen=True)
class Timing:
    """The canary's clock: --quick uses short blocks so a scenario ends within minutes."""

    interval: str
    warmup: str
    min_dwell: str
    max_duration: str
    lag: str
    deadline_seconds: float


QUICK = Timing(
    interval="10s", warmup="20s", min_dwell="30s", max_duration="15m", lag="3s", deadline_seconds=1080
)
REALISTIC = Timing(
    interval="1m", warmup="2m", min_dwell="5m", max_duration="2h", lag="15s", deadline_seconds=7500
)


def _command(build: str) -> Callable[[Mapping[str, Any], int], list[str]]:
    def argv(_container: Mapping[str, Any], port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "textscore",
            "--build",
            build,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]

    return argv


@dataclass
class Workload:
    """What the workload's manifests declare, found by the labels and kinds (not hard-coded names)."""

    documents: list[dict[str, Any]]
    baseline: str = ""
    candidate: str = ""
    route: str = ""
    service: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path) -> Workload:
        """The documents the directory's kustomization.yaml lists (all *.yaml files without one)."""
        kustomization = directory / "kustomization.yaml"
        if kustomization.is_file():
            files = [directory / f for f in yaml.safe_load(kustomization.read_text()).get("resources", [])]
        else:
            files = sorted(directory.glob("*.yaml"))
        docs = [d for path in files for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
        workload = cls(docs)
        for doc in docs:
            kind, name = doc.get("kind"), doc.get("metadata", {}).get("name", "")
            if kind == "Deployment":
                track = doc["spec"]["template"]["metadata"].get("labels", {}).get("track")
                if track == "baseline":
                    workload.baseline = name
                elif track == "candidate":
                    workload.candidate = name
            elif kind == "HTTPRoute":
                workload.route = name
        if not (workload.baseline and workload.candidate and workload.route):
            raise ValueError(
                f"{directory}: need Deployments labelled track=baseline and track=candidate and an HTTPRoute"
            )
        return workload

    def manifests(self, namespace: str, candidate_env: Mapping[str, str]) -> str:
        docs = copy.deepcopy(self.documents)
        for doc in docs:
            doc.setdefault("metadata", {})["namespace"] = namespace
            if (
                doc.get("kind") == "Deployment"
                and doc["metadata"]["name"] == self.candidate
                and candidate_env
            ):
                for container in doc["spec"]["template"]["spec"]["containers"]:
                    env = [e for e in container.get("env", []) if e.get("name") not in candidate_env]
                    env += [{"name": k, "value": v} for k, v in candidate_env.items()]
                    container["env"] = env
        return json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})


def canary_manifest(
    name: str, namespace: str, workload: Workload, timing: Timing, prometheus_url: str
) -> dict[str, Any]:
    """The example RustCanary (crds/examples/gateway-api.yaml) with the demo's clock and Prometheus."""
    example = yaml.safe_load((repo_root() / "crds" / "examples" / "gateway-api.yaml").read_text())
    example["metadata"] = {"name": name, "namespace": namespace}
    spec = example["spec"]
    spec["baseline"]["deployment"] = workload.baseline
    spec["candidate"]["deployment"] = workload.candidate
    spec["trafficRouting"] = {"gatewayAPI": {"httpRoute": workload.route}}
    spec["steps"]["minDwell"] = timing.min_dwell
    analysis = spec.setdefault("analysis", {})
    analysis.update(interval=timing.interval, warmup=timing.warmup, maxDuration=timing.max_duration)
    analysis["prometheus"] = {"address": prometheus_url, "lag": timing.lag}
    return dict(example)


class LoadThread:
    """Open-loop constant-rate load through the gateway, in chunks, until stopped."""

    def __init__(self, port: int, rate: float, path: str = "/v1/score") -> None:
        self.port = port
        self.rate = rate
        self.requests = [loadgen.request_bytes(path, body) for body in corpus.bodies()]
        self.sent = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            outcome = asyncio.run(
                loadgen.run_constant_rate(
                    "127.0.0.1", self.port, self.requests, rate=self.rate, duration=5.0, drain=10.0
                )
            )
            self.sent += outcome.sent
            self.errors += outcome.errors + outcome.failures

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@dataclass
class DemoRun:
    """A running demo: the handles the live view and the end-of-run steps need."""

    sandbox: Sandbox
    api: rest.JsonApi
    namespace: str
    name: str
    scenario: Scenario
    timing: Timing
    runner: PodRunner
    follower: RouteFollower
    load: LoadThread
    started: float = field(default_factory=time.monotonic)

    def canary(self) -> dict[str, Any]:
        return self.api.get(f"/apis/{GROUP}/{VERSION}/namespaces/{self.namespace}/{PLURAL}/{self.name}")

    def phase(self) -> str:
        return str(self.canary().get("status", {}).get("phase", "Pending"))


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(rest.KubeError, OSError):
            if predicate():
                return
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


@contextlib.contextmanager
def running(
    scenario: Scenario,
    timing: Timing,
    rate: float,
    progress: Callable[[str], None],
    sandbox_name: str = "demo",
) -> Iterator[DemoRun]:
    """Bring everything up for one scenario; tear it all down when the ``with`` block ends."""
    root = repo_root()
    sandbox = Sandbox(sandbox_name)
    with contextlib.ExitStack() as stack:
        if not sandbox.is_up():
            progress("bringing up the sandbox (etcd, control plane, kwok, Prometheus)")
            sandbox.up(progress)
            stack.callback(sandbox.down)
        api = client.connect(str(sandbox.kubeconfig))
        namespace = f"demo-{scenario.name}-{uuid.uuid4().hex[:5]}"
        progress(f"installing the CRD and the workload into namespace {namespace}")
        sandbox.kubectl(
            "apply", "--server-side", "-f", str(root / "crds" / "rustcanaries.ferrocanary.io.yaml")
        )
        crd = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/rustcanaries.ferrocanary.io"
        _wait(lambda: _condition(api.get(crd), "Established"), 60, "the RustCanary CRD to be established")
        sandbox.kubectl("create", "namespace", namespace)
        stack.callback(sandbox.kubectl, "delete", "namespace", namespace, "--wait=false", check=False)
        workload = Workload.load(root / "workloads" / "k8s")
        sandbox.kubectl("apply", "-f", "-", input_text=workload.manifests(namespace, scenario.candidate_env))

        progress("starting the builds for the pods kwok runs, and the nginx gateway")
        runner = PodRunner(
            sandbox, api, namespace, {image: _command(build) for image, build in IMAGES.items()}
        )
        runner.start()
        stack.callback(runner.stop)
        gateway = NginxGateway(
            sandbox.dir / "gateways" / namespace, sandbox.toolchain.path("nginx"), processes.free_port()
        )
        gateway.start()
        stack.callback(gateway.stop)
        follower = RouteFollower(gateway, api, namespace, workload.route, runner=runner)
        follower.start()
        stack.callback(follower.stop)
        _wait(
            lambda: len([c for c in runner.snapshot() if c.popen is not None]) >= 2, 120, "both builds to run"
        )
        _wait(lambda: bool(gateway.programmed), 60, "the gateway to follow the HTTPRoute")

        progress("starting the operator")
        operator_port = processes.free_port()
        operator_log = sandbox.logs_dir / f"operator-{namespace}.log"
        env = {**os.environ, "KUBECONFIG": str(sandbox.kubeconfig)}
        argv = [sys.executable, "-m", "ferrocanary.cli.main", "run", "-n", namespace,
                "--metrics-port", str(operator_port), "--metrics-address", "127.0.0.1"]  # fmt: skip
        with operator_log.open("ab") as out:
            operator = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        stack.callback(_stop_popen, operator)
        sandbox.add_scrape_target(f"ferrocanary-operator-{namespace}", [f"127.0.0.1:{operator_port}"],
                                  {"namespace": namespace, "service": "ferrocanary"})  # fmt: skip
        stack.callback(sandbox.remove_scrape_target, f"ferrocanary-operator-{namespace}")

        progress(f"sending {rate:g} requests/s through the gateway")
        load = LoadThread(gateway.port, rate)
        load.start()
        stack.callback(load.stop)

        name = "textscore"
        manifest = canary_manifest(name, namespace, workload, timing, sandbox.prometheus_url)
        sandbox.kubectl("apply", "-f", "-", input_text=json.dumps(manifest))
        progress("RustCanary applied: the operator takes it from here")
        yield DemoRun(sandbox, api, namespace, name, scenario, timing, runner, follower, load)


def _condition(obj: Mapping[str, Any], kind: str) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def _stop_popen(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
