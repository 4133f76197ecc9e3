"""A real node (``local up --nodes real``): pods run in containers, and ``down`` leaves nothing behind.

One sandbox with a real node for the whole module (about 20 s to start once the project's images are
built and cached): containerd, runc, the CNI bridge, the kubelet, kube-proxy in iptables mode,
kube-state-metrics, and Prometheus discovering the kubelet's cAdvisor and the pods through the
apiserver. What a user of a cluster would notice is checked: the Node is Ready on containerd and
lists the images imported into it; a pod's output comes back through ``kubectl logs`` and ``exec``; a
container over its memory limit is ended by the kernel and reported ``OOMKilled``, by the kubelet and
by kube-state-metrics in Prometheus; cAdvisor's series reach Prometheus, and so does an annotated
pod's own, found through the apiserver; a ClusterIP Service reaches its pod; the textscore images
built from the project's Dockerfiles serve as pods (the Rust build with its compiled extension); the
operator's image, installed by the chart with its ServiceAccount, becomes Ready and handles a
RustCanary with nothing but the chart's RBAC; a canary on the cAdvisor preset is promoted on the CPU
the kernel accounted to real containers (nothing else shows the win); ``ferrocanary demo``'s crash
and oom scenarios roll back on the kernel's SIGSEGV and OOM kill of the Rust build's pods (the
operator in-cluster from its image, the fault seen by the kubelet and by kube-state-metrics in
Prometheus); ``up`` after a crash cleans up first and comes back.
The cAdvisor canary shares this module's node: a machine runs one real node at a time, and
`make test`'s parallel workers each take whole modules.
The last test takes the sandbox down and looks for any process, mount, bridge, network namespace,
cgroup, iptables chain or kernel setting left changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes import config

from ferrocanary.kube import rest
from ferrocanary.local import demo, host, imagebuild, images, node, processes, realnode
from ferrocanary.local.sandbox import Sandbox
from ferrocanary.local.toolchain import cache_dir
from tests.support import arms, waiting
from tests.support.canary import Canary, analysis_only, fresh_namespaces, install_crd

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="a real node needs root"),
]

BUSYBOX = images.BUSYBOX_IMAGE


@pytest.fixture(scope="module")
def real() -> Iterator[Sandbox]:
    box = Sandbox(f"realnode-{os.getpid()}", nodes="real")
    try:
        box.up()
        yield box
    finally:
        box.down()


def _pod(name: str, command: str, **extra: Any) -> str:
    container: dict[str, Any] = {
        "name": "main",
        "image": BUSYBOX,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", command],
        **extra.pop("container", {}),
    }
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": name}, **extra.pop("metadata", {})},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1, "containers": [container]},
        }
    )


def _until(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} not reached within {timeout:.0f}s")


def _get(real: Sandbox, kind: str, name: str) -> dict[str, Any]:
    return dict(json.loads(real.kubectl("get", kind, name, "-o", "json")))


def _query(real: Sandbox, promql: str) -> list[dict[str, Any]]:
    url = f"{real.prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return list(json.load(response)["data"]["result"])


def test_the_node_is_ready_on_containerd_with_its_images(real: Sandbox) -> None:
    status = _get(real, "node", node.NODE_NAME)["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert status["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://1.6")
    names = {n for image in status["images"] for n in image["names"]}
    assert {images.PAUSE_IMAGE, BUSYBOX, node.debian_base_image(real.toolchain)} <= names
    # The operator's and both textscore builds' images, built from the Dockerfiles and imported.
    assert set(_project_images(real).values()) <= names


def _project_images(real: Sandbox) -> dict[str, str]:
    """name -> reference of the images ``up`` built (cached by then: this only hashes their inputs)."""
    return {b.name: b.reference for b in imagebuild.ImageBuilder(real.toolchain).ensure()}


def _textscore_pod(name: str, image: str, build: str) -> dict[str, Any]:
    """As workloads/k8s runs it: non-root, read-only root filesystem, probed on /healthz."""
    probe = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 2}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001},
            "containers": [
                {
                    "name": "textscore",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "env": [{"name": "TEXTSCORE_BUILD", "value": build}],
                    "readinessProbe": probe,
                    "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False},
                    "resources": {"limits": {"memory": "256Mi"}},
                }
            ],
        },
    }


def _post(url: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.headers.get("X-Build")), dict(json.load(response))


def test_the_textscore_images_from_the_dockerfiles_serve_both_builds(real: Sandbox) -> None:
    built = _project_images(real)
    for build in ("python", "rust"):
        name = f"textscore-{build}"
        real.kubectl("apply", "-f", "-", input_text=json.dumps(_textscore_pod(name, built[name], build)))
    try:
        for build in ("python", "rust"):
            name = f"textscore-{build}"
            real.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=90s")
            ip = _get(real, "pod", name)["status"]["podIP"]
            served_by, answer = _post(f"http://{ip}:8080/v1/score", {"texts": ["a fast and honest canary"]})
            assert served_by == build
            assert answer
        # The Rust build's hot path is the extension maturin compiled inside the image's build.
        native = "import pathlib, textscore_native as n; print(*pathlib.Path(n.__file__).parent.glob('*.so'))"
        where = real.kubectl("exec", "textscore-rust", "--", "python", "-c", native)
        assert "/opt/venv/lib/python3.11/site-packages/textscore_native/" in where
        assert where.strip().endswith(".so")
    finally:
        real.kubectl("delete", "pod", "textscore-python", "textscore-rust", "--now", check=False)


def _helm(real: Sandbox, home: Path, *args: str) -> str:
    env = {**os.environ, **real.env()}
    env.update({f"HELM_{k}_HOME": str(home / k.lower()) for k in ("CACHE", "CONFIG", "DATA")})
    proc = subprocess.run(
        [str(real.bin_dir / "helm"), *args], env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == 0, f"helm {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def test_the_operator_runs_in_cluster_from_its_image_with_the_charts_rbac(
    real: Sandbox, tmp_path: Path
) -> None:
    image = _project_images(real)["operator"]
    release, watched = "ferrocanary", f"shop-{uuid.uuid4().hex[:6]}"
    real.kubectl("create", "namespace", "ferrocanary-system")
    real.kubectl("create", "namespace", watched)
    settings = realnode.in_cluster_operator_values(real, image, watched, processes.free_port())
    flags = [a for key, value in settings.items() for a in ("--set", f"{key}={value}")]
    _helm(real, tmp_path, "install", release, str(ROOT / "charts" / "ferrocanary"),
          "-n", "ferrocanary-system", *flags, "--wait", "--timeout", "180s")  # fmt: skip
    try:
        pods = json.loads(real.kubectl("-n", "ferrocanary-system", "get", "pods", "-o", "json"))["items"]
        (pod,) = pods
        assert pod["spec"]["serviceAccountName"] == "ferrocanary"
        assert pod["spec"]["containers"][0]["image"] == image
        ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"
        # One canary, handled by the pod: its status is written with the ServiceAccount's rights.
        canary = analysis_only(watched)
        real.kubectl("apply", "-f", "-", input_text=json.dumps(canary))

        def phase() -> str:
            got = json.loads(real.kubectl("-n", watched, "get", "rustcanary", "scorer", "-o", "json"))
            return str((got.get("status") or {}).get("phase") or "")

        assert _until(phase, 90, "the in-cluster operator's status on the canary")
        log = real.kubectl("-n", "ferrocanary-system", "logs", pod["metadata"]["name"])
        assert "analysis started" in log
        assert "Forbidden" not in log
    finally:
        real.kubectl("-n", watched, "delete", "rustcanary", "scorer", "--wait=false", check=False)
        _helm(real, tmp_path, "uninstall", release, "-n", "ferrocanary-system", "--wait")


def test_the_debian_base_image_runs(real: Sandbox) -> None:
    pod = json.loads(_pod("debian", "cat /etc/debian_version; sleep 3600"))
    pod["spec"]["containers"][0]["image"] = node.debian_base_image(real.toolchain)
    real.kubectl("apply", "-f", "-", input_text=json.dumps(pod))
    real.kubectl("wait", "--for=condition=Ready", "pod/debian", "--timeout=60s")
    assert _until(lambda: real.kubectl("logs", "debian").strip().startswith("12."), 20, "bookworm's version")
    assert real.kubectl("exec", "debian", "--", "dpkg-query", "-W", "-f=${Version}", "bash")
    real.kubectl("delete", "pod", "debian", "--now")


def test_a_pod_runs_and_logs_and_exec_work(real: Sandbox) -> None:
    real.kubectl("apply", "-f", "-", input_text=_pod("hello", "echo hello-from-a-container; sleep 3600"))
    real.kubectl("wait", "--for=condition=Ready", "pod/hello", "--timeout=60s")
    _until(lambda: "hello-from-a-container" in real.kubectl("logs", "hello"), 20, "the pod's log line")
    # Inside the container: its own PID 1 and hostname, not this machine's.
    assert real.kubectl("exec", "hello", "--", "cat", "/proc/1/cmdline").startswith("sleep")
    assert real.kubectl("exec", "hello", "--", "sh", "-c", "echo $HOSTNAME").strip() == "hello"


def test_a_container_over_its_memory_limit_is_oomkilled_by_the_kernel(real: Sandbox) -> None:
    # `tail` of an endless line buffers it whole: it grows until the cgroup's OOM killer ends it.
    pod = _pod("hog", "tail /dev/zero", container={"resources": {"limits": {"memory": "32Mi"}}})
    real.kubectl("apply", "-f", "-", input_text=pod)

    def terminated() -> dict[str, Any] | None:
        statuses = _get(real, "pod", "hog")["status"].get("containerStatuses") or [{}]
        found: dict[str, Any] | None = statuses[0].get("state", {}).get("terminated")
        return found

    state = _until(terminated, 60, "the hog's termination")
    assert (state["reason"], state["exitCode"]) == ("OOMKilled", 137)
    # The same fact as a cluster's dashboards see it: kube-state-metrics, scraped by Prometheus.
    reason = 'kube_pod_container_status_terminated_reason{pod="hog",reason="OOMKilled"} == 1'
    assert _until(lambda: _query(real, reason), 60, "kube-state-metrics' OOMKilled series")


def test_cadvisor_series_reach_prometheus_with_pod_labels(real: Sandbox) -> None:
    real.kubectl("apply", "-f", "-", input_text=_pod("busy", "while true; do :; done"))
    try:
        real.kubectl("wait", "--for=condition=Ready", "pod/busy", "--timeout=60s")
        # A busy loop: a good share of a core, once its samples span the window. Not the first
        # value seen: on a machine at load 10 on 2 cores that window held its start-up (0.04).
        cpu = 'rate(container_cpu_usage_seconds_total{pod="busy",container="main"}[15s]) > 0.05'
        series = _until(lambda: _query(real, cpu), 90, "cAdvisor's CPU series for the busy pod")
        assert series[0]["metric"]["namespace"] == "default"
        memory = 'container_memory_working_set_bytes{pod="busy",container="main"}'
        assert _until(lambda: _query(real, memory), 30, "cAdvisor's memory series")
    finally:
        real.kubectl("delete", "pod", "busy", "--now")


def test_prometheus_finds_an_annotated_pod_through_the_apiserver(real: Sandbox) -> None:
    serve = "mkdir -p /www && echo 'smoke_up 1' > /www/metrics && httpd -f -p 9100 -h /www"
    annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9100",
        "prometheus.io/path": "/metrics",
    }
    real.kubectl(
        "apply", "-f", "-", input_text=_pod("exporter", serve, metadata={"annotations": annotations})
    )
    series = _until(lambda: _query(real, 'smoke_up{job="kubernetes-pods"}'), 90, "the pod's own series")
    labels = series[0]["metric"]
    assert (labels["namespace"], labels["pod"], labels["app"]) == ("default", "exporter", "exporter")


def test_a_cluster_ip_service_reaches_its_pod(real: Sandbox) -> None:
    real.kubectl(
        "apply",
        "-f",
        "-",
        input_text=_pod(
            "web", "mkdir -p /www && echo served-by-web > /www/index.html && httpd -f -p 8080 -h /www"
        ),
    )
    real.kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=60s")
    real.kubectl("expose", "pod", "web", "--port=80", "--target-port=8080", "--name=web")
    cluster_ip = real.kubectl("get", "service", "web", "-o", "jsonpath={.spec.clusterIP}")

    def fetch() -> str:
        try:
            with urllib.request.urlopen(f"http://{cluster_ip}/index.html", timeout=2) as response:
                return str(response.read().decode())
        except OSError:
            return ""

    # kube-proxy's DNAT from the ClusterIP to the pod's IP on the bridge.
    assert "served-by-web" in _until(fetch, 60, "the Service answering")


# The cAdvisor preset judged on this node: CPU as the kubelet's cAdvisor measures real containers.
# Each build is a Deployment of one pod burning CPU up to its CFS quota (Python 40m, Rust 10m), so the
# kernel's accounting, read by cAdvisor, says the Rust build spends a quarter of the CPU. Requests and
# latency are played by the contract exporter under the real pods' names, the split fixed at 50/50,
# with the same CPU per request in both builds' process collector: a promotion with throughput per
# CPU near 4x is read from cAdvisor or not at all. The operator runs in this process (kopf's runner).
# Small quotas, so a busy loop gets all of its quota even when the machine is busy: at 80m the
# Python pod got 46m while `make test`'s other worker ran a canary beside it.
BASELINE_MILLICORES = 40
CANDIDATE_MILLICORES = 10  # a quarter of the baseline's CPU for the same requests


@pytest.fixture(scope="module")
def real_api(real: Sandbox) -> rest.Rest:
    install_crd(real)
    return rest.Rest(config.new_client_from_config(config_file=str(real.kubeconfig)))


@pytest.fixture
def canary_namespace(real: Sandbox) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    with fresh_namespaces(real, name):
        yield name


@pytest.fixture
def operator(real: Sandbox, canary_namespace: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[KopfRunner]:
    monkeypatch.setenv("KUBECONFIG", str(real.kubeconfig))
    monkeypatch.delenv("FERROCANARY_METRICS_PORT", raising=False)
    args = ["run", "--standalone", "--namespace", canary_namespace, "-m", "ferrocanary.handlers"]
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
    real: Sandbox, real_api: rest.Rest, canary_namespace: str, tmp_path: Path
) -> None:
    namespace = canary_namespace
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
        # requests per CPU-second as the kernel accounted the quotas: 40m / 10m = 4x (the exporter's
        # process CPU would say 1x)
        assert 1.5 < throughput["lower"] <= throughput["estimate"] <= throughput["upper"]
        assert 3.0 < throughput["estimate"] < 5.0
        # Each build's CPU as the judge read it off the newest block, in cores. The kubelet's cAdvisor
        # refreshes a container's counter every few seconds, not at a 3 s block's edges, so one block
        # reads anywhere from about half to more than the quota (CI runs read 54m and 20m for the 40m
        # pod, 4.9m for the 10m one): only the order holds per block. The estimate above, over every
        # block, is the figure that has to be close.
        judged = status["arms"]
        assert judged["baseline"]["cpuCores"] > judged["candidate"]["cpuCores"] > 0, judged
        assert status["pricing"]["source"] == "static"  # no OpenCost on this node
    finally:
        canary.delete()
        canary.stop()


@contextlib.contextmanager
def _demo_verdict(real: Sandbox, scenario: str) -> Iterator[tuple[demo.DemoRun, dict[str, Any]]]:
    """``ferrocanary demo --quick --scenario NAME`` on this module's node, to its verdict: the builds
    as pods from their images, the operator in-cluster from the chart, load through the gateway.

    The demo tests come after the node's own checks: a demo's pods, still terminating after it,
    would take CPU from their busy loop and probes."""
    with demo.running(
        demo.SCENARIOS[scenario], demo.QUICK, 60.0, lambda _: None, sandbox_name=real.name
    ) as run:
        assert run.nodes == "real"

        def ended() -> dict[str, Any] | None:
            obj = run.canary()
            return obj if (obj.get("status") or {}).get("phase") in demo.TERMINAL_PHASES else None

        yield run, _until(ended, 300, f"the {scenario} scenario's verdict")


def _operator_pod(real: Sandbox, namespace: str) -> dict[str, Any]:
    pods = json.loads(real.kubectl("-n", namespace, "get", "pods", "-o", "json"))["items"]
    (pod,) = [p for p in pods if p["metadata"]["labels"].get("app.kubernetes.io/name") == "ferrocanary"]
    return dict(pod)


def test_demo_crash_rolls_back_on_a_real_sigsegv_seen_by_the_kubelet_and_kube_state_metrics(
    real: Sandbox,
) -> None:
    with _demo_verdict(real, "crash") as (run, canary):
        status = canary["status"]
        assert status["phase"] == "RolledBack", status.get("verdictReason")
        assert "SIGSEGV (exit 139)" in status["verdictReason"]
        # The operator that decided is the chart's pod, running the operator's image.
        operator = _operator_pod(real, run.namespace)
        assert operator["spec"]["containers"][0]["image"] == _project_images(real)["operator"]
        # The kubelet's record of the crash, and the real kube-state-metrics' in Prometheus.
        pods = json.loads(
            real.kubectl("-n", run.namespace, "get", "pods", "-l", "track=candidate", "-o", "json")
        )
        last = [
            c.get("lastState", {}).get("terminated") or {}
            for p in pods["items"]
            for c in p["status"]["containerStatuses"]
        ]
        assert 139 in {t.get("exitCode") for t in last}
        crashed = f'kube_pod_container_status_last_terminated_exitcode{{namespace="{run.namespace}"}} == 139'
        assert _until(lambda: _query(real, crashed), 30, "kube-state-metrics' exit code 139")
        restarts = f'kube_pod_container_status_restarts_total{{namespace="{run.namespace}"}} > 0'
        assert _query(real, restarts)


def test_demo_oom_rolls_back_naming_the_kernels_oomkilled(real: Sandbox) -> None:
    with _demo_verdict(real, "oom") as (run, canary):
        status = canary["status"]
        assert status["phase"] == "RolledBack", status.get("verdictReason")
        assert "OOMKilled (exit 137)" in status["verdictReason"]
        killed = (
            f'kube_pod_container_status_last_terminated_reason{{namespace="{run.namespace}",'
            'reason="OOMKilled"} == 1'
        )
        assert _until(lambda: _query(real, killed), 30, "kube-state-metrics' OOMKilled series")


def test_up_after_a_crash_cleans_up_first_and_comes_back(real: Sandbox) -> None:
    real.kubectl("apply", "-f", "-", input_text=_pod("survivor", "sleep 3600"))
    real.kubectl("wait", "--for=condition=Ready", "pod/survivor", "--timeout=60s")
    state = real.load_state()
    assert state is not None
    for name in ("kubelet", "containerd", "kube-apiserver"):  # as if the machine's OOM killer struck
        os.kill(state.components[name].pid, signal.SIGKILL)
    assert not real.is_up()

    assert real.up() is True
    # The crashed run's containers did not outlive it, and the new node is Ready on a clean slate.
    assert "sleep 3600" not in _all_cmdlines()
    assert "survivor" not in real.kubectl("get", "pods", "-o", "name")
    ready = '{.status.conditions[?(@.type=="Ready")].status}'
    assert real.kubectl("get", "node", node.NODE_NAME, "-o", f"jsonpath={ready}") == "True"


def _all_cmdlines() -> str:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    return "\n".join(found)


def test_down_leaves_no_process_mount_bridge_cgroup_chain_or_setting(real: Sandbox) -> None:
    state = real.load_state()
    assert state is not None
    assert state.host
    recorded = host.HostState(**state.host)
    pids = [c.pid for c in state.components.values()]
    iptables = real.toolchain.path("iptables").parent
    real.down()

    assert not [p for p in pids if Path(f"/proc/{p}").exists() and "Z" not in _state(p)]
    assert not host.mounts_under(real.dir)
    assert not Path(f"/sys/class/net/{recorded.bridge}").exists()
    assert not host.cgroup_pids(recorded)
    assert not [h for h in host.hierarchies() if (h / recorded.cgroup).exists()]
    assert not host.iptables_chains(iptables)
    assert {k: host.read_sysctl(k) for k in recorded.sysctls} == recorded.sysctls
    assert not _shims_of(real.dir)
    assert not real.dir.exists()
    assert not (cache_dir() / "sandboxes" / real.name).exists()


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "Z"
    return stat[stat.rindex(")") + 2]


def _shims_of(directory: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(directory).encode() in cmdline and _state(int(entry.name)) != "Z":
                found.append(int(entry.name))
    return found
