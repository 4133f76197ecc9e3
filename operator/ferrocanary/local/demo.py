"""`ferrocanary demo`: a full canary of the reference workload on the one-machine sandbox.

Two ways to run it, by the sandbox's nodes (``--nodes``):

- ``real`` (as root, the default of ``make demo`` where it can run): the sandbox's real node
  (containerd, runc, the kubelet, kube-proxy, the real kube-state-metrics, Prometheus discovering
  pods through the apiserver). The Python and Rust builds run as pods from the images built from
  the project's Dockerfiles; a fault mode is the pod spec's environment as on any cluster, so a
  SIGSEGV or an OOM kill comes from the kernel and reaches the operator through the kubelet's pod
  status and kube-state-metrics in Prometheus. The operator runs in the cluster from its own image,
  installed by the project's Helm chart with its ServiceAccount and RBAC.
- ``kwok``: kwok's fake node makes the pods Running and ``local.pods`` stands in for the container
  runtime (the real builds as local processes, its own kube-state-metrics series, an RSS check for
  the OOM kill); the operator runs as a local process (``ferrocanary run``).

Both: the RustCanary CRD and the workload's manifests (workloads/k8s) applied with the real
kubectl; a real nginx follows the HTTPRoute's weights (``local.gateway``) and an open-loop
constant-rate load generator sends traffic through it; at the end the verdict, a Markdown report
with plots, and optionally the recording.

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
from ferrocanary.local import processes, realnode
from ferrocanary.local.gateway import Endpoints, NginxGateway, RouteFollower
from ferrocanary.local.pods import PodRunner
from ferrocanary.local.sandbox import Sandbox, SandboxError
from ferrocanary.local.toolchain import Toolchain, repo_root
from ferrocanary.policy import report

TERMINAL_PHASES = ("Promoted", "RolledBack", "Inconclusive", "Invalid")
IMAGES = {"textscore:python": "python", "textscore:rust": "rust"}  # image (workloads/k8s) -> build
NODES = ("auto", "real", "kwok")
# The real node has this machine's cores (2 on the smallest): the manifests' 500m request per pod
# would leave no room for the operator beside four workload pods. Limits stay as written.
REAL_NODE_CPU_REQUEST = "100m"
GROUP, VERSION, PLURAL = "ferrocanary.io", "v1alpha1", "rustcanaries"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    candidate_env: Mapping[str, str]
    expected_phase: str
    expected_words: tuple[str, ...]  # what the verdict's reason must mention
    candidate_memory_limit: str = ""  # the candidate container's memory limit (and request), if set


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
    "oom": Scenario(
        "oom",
        "the Rust build leaking 4 MiB a request under a 128Mi memory limit (fault mode leak)",
        # About 15 leaked requests past the build's own ~60 MiB: at 5% of 60 requests/s over two
        # pods the kernel's OOM killer ends one within about 10 seconds of the first shift.
        {"TEXTSCORE_FAULT": "leak", "TEXTSCORE_FAULT_LEAK_KIB": "4096"},
        "RolledBack",
        ("OOMKilled",),
        candidate_memory_limit="128Mi",
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

    def manifests(self, namespace: str, scenario: Scenario, images: Mapping[str, str] | None = None) -> str:
        """The documents for ``namespace``, the candidate with the scenario's fault mode and limit.

        ``images`` (the manifests' image -> the one the node has) is a real node's: every pod then
        runs the locally built image, never pulled, with a smaller CPU request."""
        docs = copy.deepcopy(self.documents)
        for doc in docs:
            doc.setdefault("metadata", {})["namespace"] = namespace
            if doc.get("kind") != "Deployment":
                continue
            for container in doc["spec"]["template"]["spec"]["containers"]:
                if doc["metadata"]["name"] == self.candidate:
                    _candidate(container, scenario)
                if images is not None:
                    container["image"] = images.get(container.get("image", ""), container.get("image"))
                    container["imagePullPolicy"] = "Never"
                    container.setdefault("resources", {}).setdefault("requests", {})["cpu"] = (
                        REAL_NODE_CPU_REQUEST
                    )
        return json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})


def _candidate(container: dict[str, Any], scenario: Scenario) -> None:
    """The fault mode as a user switches it on: environment variables, and a memory limit."""
    if scenario.candidate_env:
        env = [e for e in container.get("env", []) if e.get("name") not in scenario.candidate_env]
        env += [{"name": k, "value": v} for k, v in scenario.candidate_env.items()]
        container["env"] = env
    if scenario.candidate_memory_limit:
        resources = container.setdefault("resources", {})
        resources.setdefault("limits", {})["memory"] = scenario.candidate_memory_limit
        resources.setdefault("requests", {})["memory"] = scenario.candidate_memory_limit


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


class PodAddresses:
    """A real node's pods as a Service's EndpointSlice lists them: the ready ones, at pod IP and port.

    What a Gateway implementation routes to; the bridge makes pod IPs reachable from this machine,
    so the sandbox's nginx sends each request straight to a pod, as a cluster's gateway does."""

    def __init__(self, api: rest.JsonApi, namespace: str) -> None:
        self.api = api
        self.namespace = namespace

    def endpoints(self, pod_names: set[str]) -> list[str]:
        pods = self.api.get(f"/api/v1/namespaces/{self.namespace}/pods").get("items", [])
        found = []
        for pod in pods:
            meta, status = pod.get("metadata") or {}, pod.get("status") or {}
            if meta.get("name") not in pod_names or meta.get("deletionTimestamp") or not status.get("podIP"):
                continue
            if not _condition(pod, "Ready"):
                continue
            ports = [p for c in pod["spec"]["containers"] for p in c.get("ports", [])]
            if ports:
                found.append(f"{status['podIP']}:{ports[0]['containerPort']}")
        return sorted(found)


def choose_nodes(requested: str, sandbox_name: str) -> tuple[str, str]:
    """``real`` or ``kwok`` for ``--nodes requested``, and why (``auto``: real where it can run)."""
    if requested not in NODES:
        raise ValueError(f"--nodes: {requested!r} is not one of {', '.join(NODES)}")
    existing = Sandbox(sandbox_name)
    state = existing.load_state()
    if state is not None and existing.is_up():
        if requested not in ("auto", state.nodes):
            raise ValueError(
                f"--nodes {requested}: sandbox {sandbox_name!r} is up with {state.nodes} nodes; "
                f"stop it first (ferrocanary local down --name {sandbox_name}) or pass --nodes {state.nodes}"
            )
        return state.nodes, f"sandbox {sandbox_name!r} is already up with {state.nodes} nodes"
    if requested != "auto":
        return requested, f"--nodes {requested}"
    if os.geteuid() != 0:
        return "kwok", "a real node needs root (--nodes kwok: the builds run as local processes)"
    missing = Toolchain().missing("real")
    if missing:
        names = ", ".join(c.name for c in missing)
        return "kwok", f"the real node's parts are not built ({names}; `ferrocanary local build` builds them)"
    try:
        realnode.preflight(Sandbox(sandbox_name, nodes="real"))
    except SandboxError as exc:
        return "kwok", str(exc)
    return "real", "root, and the real node's parts are built"


@dataclass
class DemoRun:
    """A running demo: the handles the live view and the end-of-run steps need."""

    sandbox: Sandbox
    api: rest.JsonApi
    namespace: str
    name: str
    scenario: Scenario
    timing: Timing
    nodes: str
    follower: RouteFollower
    load: LoadThread
    runner: PodRunner | None = None  # the kwok path's stand-in for the container runtime
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
    *,
    sandbox_name: str = "demo",
    nodes: str = "kwok",
) -> Iterator[DemoRun]:
    """Bring everything up for one scenario; tear it all down when the ``with`` block ends.

    ``nodes`` is the sandbox's kind when the demo brings it up (``choose_nodes`` resolves
    ``auto``); a sandbox already up is used as it is."""
    sandbox = Sandbox(sandbox_name, nodes=nodes)
    with contextlib.ExitStack() as stack:
        if not sandbox.is_up():
            what = "a real node" if nodes == "real" else "kwok"
            progress(f"bringing up the sandbox (etcd, control plane, {what}, Prometheus)")
            sandbox.up(progress)
            stack.callback(sandbox.down)
            stack.callback(progress, "taking the sandbox down")  # runs just before it: LIFO
        state = sandbox.load_state()
        real = state is not None and state.nodes == "real"
        api = client.connect(str(sandbox.kubeconfig))
        namespace = f"demo-{scenario.name}-{uuid.uuid4().hex[:5]}"
        images = realnode.project_images(sandbox, progress) if real else {}
        setup = _Setup(sandbox, api, namespace, stack, progress)
        workload = _install(setup, scenario, images)
        runner: PodRunner | None = None
        if real:
            progress("waiting for both builds' pods to be ready on the real node")
            for deployment in (workload.baseline, workload.candidate):
                sandbox.kubectl("-n", namespace, "rollout", "status", f"deployment/{deployment}",
                                "--timeout=110s")  # fmt: skip
            endpoints: Endpoints = PodAddresses(api, namespace)
        else:
            progress("starting the builds for the pods kwok runs")
            runner = endpoints = _pod_runner(setup)
        follower = _gateway(setup, workload.route, endpoints)
        if real:
            _helm_operator(setup, images["operator"])
        else:
            _process_operator(setup)

        progress(f"sending {rate:g} requests/s through the gateway")
        load = LoadThread(follower.gateway.port, rate)
        load.start()
        stack.callback(load.stop)
        stack.callback(progress, "stopping the load, the operator, the gateway and the workload")

        name = "textscore"
        manifest = canary_manifest(name, namespace, workload, timing, sandbox.prometheus_url)
        sandbox.kubectl("apply", "-f", "-", input_text=json.dumps(manifest))
        progress("RustCanary applied: the operator takes it from here")
        yield DemoRun(sandbox, api, namespace, name, scenario, timing, "real" if real else "kwok",
                      follower, load, runner)  # fmt: skip


@dataclass(frozen=True)
class _Setup:
    """What every start-up step of one demo needs; ``stack`` undoes them all on the way out."""

    sandbox: Sandbox
    api: rest.JsonApi
    namespace: str
    stack: contextlib.ExitStack
    progress: Callable[[str], None]


def _install(setup: _Setup, scenario: Scenario, images: Mapping[str, str]) -> Workload:
    """The CRD, the namespace (deleted on the way out) and the workload's manifests."""
    sandbox, api, namespace, stack, progress = (
        setup.sandbox, setup.api, setup.namespace, setup.stack, setup.progress
    )  # fmt: skip
    root = repo_root()
    progress(f"installing the CRD and the workload into namespace {namespace}")
    # --force-conflicts: a chart installed earlier may own the CRD's fields (its schema defaults).
    sandbox.kubectl("apply", "--server-side", "--force-conflicts",
                    "-f", str(root / "crds" / "rustcanaries.ferrocanary.io.yaml"))  # fmt: skip
    crd = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/rustcanaries.ferrocanary.io"
    _wait(lambda: _condition(api.get(crd), "Established"), 60, "the RustCanary CRD to be established")
    sandbox.kubectl("create", "namespace", namespace)
    stack.callback(sandbox.kubectl, "delete", "namespace", namespace, "--wait=false", check=False)
    workload = Workload.load(root / "workloads" / "k8s")
    by_image = {image: images[f"textscore-{build}"] for image, build in IMAGES.items()} if images else None
    sandbox.kubectl("apply", "-f", "-", input_text=workload.manifests(namespace, scenario, by_image))
    return workload


def _pod_runner(setup: _Setup) -> PodRunner:
    commands = {image: _command(build) for image, build in IMAGES.items()}
    runner = PodRunner(setup.sandbox, setup.api, setup.namespace, commands)
    runner.start()
    setup.stack.callback(runner.stop)
    _wait(lambda: len([c for c in runner.snapshot() if c.popen is not None]) >= 2, 120, "both builds to run")
    return runner


def _gateway(setup: _Setup, route: str, endpoints: Endpoints) -> RouteFollower:
    setup.progress("starting the nginx gateway that follows the HTTPRoute")
    sandbox = setup.sandbox
    gateway = NginxGateway(
        sandbox.dir / "gateways" / setup.namespace, sandbox.toolchain.path("nginx"), processes.free_port()
    )
    gateway.start()
    setup.stack.callback(gateway.stop)
    follower = RouteFollower(gateway, setup.api, setup.namespace, route, runner=endpoints)
    follower.start()
    setup.stack.callback(follower.stop)
    _wait(lambda: bool(gateway.programmed), 60, "the gateway to follow the HTTPRoute")
    return follower


def _process_operator(setup: _Setup) -> None:
    """kwok's demo: ``ferrocanary run`` as a process of this machine, scraped by the sandbox."""
    sandbox, namespace = setup.sandbox, setup.namespace
    setup.progress("starting the operator")
    operator_port = processes.free_port()
    operator_log = sandbox.logs_dir / f"operator-{namespace}.log"
    env = {**os.environ, "KUBECONFIG": str(sandbox.kubeconfig)}
    argv = [sys.executable, "-m", "ferrocanary.cli.main", "run", "-n", namespace,
            "--metrics-port", str(operator_port), "--metrics-address", "127.0.0.1"]  # fmt: skip
    with operator_log.open("ab") as out:
        operator = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    setup.stack.callback(_stop_popen, operator)
    _scrape_operator(setup, operator_port)


def _scrape_operator(setup: _Setup, port: int) -> None:
    job = f"ferrocanary-operator-{setup.namespace}"
    labels = {"namespace": setup.namespace, "service": "ferrocanary"}
    setup.sandbox.add_scrape_target(job, [f"127.0.0.1:{port}"], labels)
    setup.stack.callback(setup.sandbox.remove_scrape_target, job)


def _helm_operator(setup: _Setup, image: str) -> None:
    """A real node's demo: the operator's image installed by the chart, watching the demo's namespace.

    The CRD is the demo's own (``crd.create=false``), so a release per demo never fights over it."""
    sandbox, namespace = setup.sandbox, setup.namespace
    metrics_port = processes.free_port()
    settings = realnode.in_cluster_operator_values(sandbox, image, namespace, metrics_port)
    settings["crd.create"] = "false"
    flags = [a for key, value in settings.items() for a in ("--set", f"{key}={value}")]
    setup.progress(f"installing the operator ({image}) with the Helm chart into {namespace}")
    release = namespace  # one release per demo: its ClusterRole's name is the release's own
    chart = repo_root() / "charts" / "ferrocanary"
    setup.stack.callback(_uninstall, sandbox, release, namespace)
    _helm(sandbox, "install", release, str(chart), "-n", namespace, *flags, "--wait", "--timeout", "180s")
    _scrape_operator(setup, metrics_port)


def _uninstall(sandbox: Sandbox, release: str, namespace: str) -> None:
    # On the way out, also after a failed install: nothing to uninstall is not an error then.
    with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
        _helm(sandbox, "uninstall", release, "-n", namespace, "--wait", "--timeout", "60s")


def _helm(sandbox: Sandbox, *args: str) -> str:
    """The sandbox's helm, its caches under the sandbox's folder; raises naming helm's error."""
    home = sandbox.dir / "helm"
    env = {**os.environ, **sandbox.env()}
    env.update({f"HELM_{k}_HOME": str(home / k.lower()) for k in ("CACHE", "CONFIG", "DATA")})
    argv = [str(sandbox.bin_dir / "helm"), *args]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args[:2])} failed: {proc.stderr.strip()}")
    return proc.stdout


def _condition(obj: Mapping[str, Any], kind: str) -> bool:
    """Whether ``obj``'s condition ``kind`` is True (a pod's Ready, a CRD's Established)."""
    return report.condition_status((obj.get("status") or {}).get("conditions") or [], kind) is True


def _stop_popen(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
