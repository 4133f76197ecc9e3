"""A real node (``local up --nodes real``): pods run in containers, and ``down`` leaves nothing behind.

One sandbox with a real node for the whole module (about 20 s to start): containerd, runc, the CNI
bridge, the kubelet, kube-proxy in iptables mode, kube-state-metrics, and Prometheus discovering
the kubelet's cAdvisor and the pods through the apiserver. What a user of a cluster would notice is
checked: the Node is Ready on containerd and lists the images imported into it; a pod's output
comes back through ``kubectl logs`` and ``exec``; a container over its memory limit is ended by the
kernel and reported ``OOMKilled``, by the kubelet and by kube-state-metrics in Prometheus;
cAdvisor's series reach Prometheus, and so does an annotated pod's own, found through the
apiserver; a ClusterIP Service reaches its pod; ``up`` after a crash cleans up first and comes
back. The last test takes the sandbox down and looks for any process, mount, bridge, network
namespace, cgroup, iptables chain or kernel setting left changed.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ferrocanary.local import host, images, node
from ferrocanary.local.sandbox import Sandbox
from ferrocanary.local.toolchain import cache_dir

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
        cpu = 'rate(container_cpu_usage_seconds_total{pod="busy",container="main"}[15s])'
        series = _until(lambda: _query(real, cpu), 90, "cAdvisor's CPU series for the busy pod")
        assert series[0]["metric"]["namespace"] == "default"
        assert float(series[0]["value"][1]) > 0.05  # a busy loop: a good share of a core
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
