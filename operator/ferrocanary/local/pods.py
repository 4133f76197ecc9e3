"""The sandbox's container runtime: one real local process for each Running pod kwok schedules.

kwok makes pods Running on fake nodes but runs nothing. For the demo the workload must really
serve traffic, so this runner stands in for the kubelet's container runtime, for the images it
knows: every Running pod whose container image maps to a local command gets a process on a free
127.0.0.1 port, with the container's ``env`` (so a fault mode set in a Deployment reaches the
process, as it would in a cluster). The mapping from pod to process is:

- the process is started when the pod is Running and stopped when the pod is gone;
- it is scraped by the sandbox's Prometheus with the labels a pod scrape would carry
  (``namespace``, ``pod``, ``container`` and the pod's ``track`` label);
- when it exits it is restarted (restartPolicy Always) and the termination is recorded as the
  kubelet would: exit code 128+signal (139 for SIGSEGV, 134 for SIGABRT), and a container whose
  resident memory passes its ``resources.limits.memory`` is SIGKILLed and recorded as OOMKilled
  with exit code 137, as the kernel's cgroup OOM killer does;
- those records are exported under kube-state-metrics' own series names
  (``kube_pod_container_status_restarts_total``, ``..._last_terminated_reason``,
  ``..._last_terminated_exitcode``), so the operator's fault queries are the ones it runs in a
  real cluster.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ferrocanary.kube import rest
from ferrocanary.local import processes
from ferrocanary.local.sandbox import Sandbox

# (container spec, port) -> argv. Keyed by image reference without its registry ("textscore:rust").
CommandFor = Callable[[Mapping[str, Any], int], list[str]]
RESTART_BACKOFF_SECONDS = 1.0
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)([KMGTE]i?)?$")
_FACTORS = {None: 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "E": 10**18,
            "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Ei": 2**60}  # fmt: skip


def memory_quantity(text: str) -> int:
    """Bytes of a Kubernetes memory quantity ("256Mi", "1G", "1048576")."""
    match = _QUANTITY.match(text.strip())
    if not match:
        raise ValueError(f"not a memory quantity: {text!r}")
    return int(float(match.group(1)) * _FACTORS[match.group(2)])


def image_name(image: str) -> str:
    """``registry.example/org/textscore:rust@sha256:...`` -> ``textscore:rust`` (the tag names the build)."""
    return image.rsplit("/", 1)[-1].split("@", 1)[0]


def exit_code(returncode: int) -> int:
    """Popen's returncode (negative for a signal) as a container runtime reports it."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass
class Container:
    """One pod's process and its kubelet-style record."""

    namespace: str
    pod: str
    name: str
    track: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log: Path
    memory_limit: int | None
    pid: int = 0
    restarts: int = 0
    last_reason: str = ""
    last_exit_code: int = 0
    restart_at: float = 0.0
    popen: Any = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def job(self) -> str:
        return f"pod-{self.namespace}-{self.pod}"


class PodRunner:
    """Keeps one local process per Running pod of a namespace, until ``stop``."""

    def __init__(
        self,
        sandbox: Sandbox,
        api: rest.JsonApi,
        namespace: str,
        commands: Mapping[str, CommandFor],
        poll_seconds: float = 0.5,
    ) -> None:
        self.sandbox = sandbox
        self.api = api
        self.namespace = namespace
        self.commands = dict(commands)
        self.poll_seconds = poll_seconds
        self.containers: dict[str, Container] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.metrics_port = 0

    # ------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        registry = CollectorRegistry()
        registry.register(_KubeStateCollector(self))
        self.metrics_port = processes.free_port()
        start_http_server(self.metrics_port, addr="127.0.0.1", registry=registry)
        self.sandbox.add_scrape_target(
            f"kube-state-metrics-{self.namespace}",
            [f"127.0.0.1:{self.metrics_port}"],
            {"service": "kube-state-metrics"},
        )
        self._thread = threading.Thread(target=self._loop, name=f"pods-{self.namespace}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
        with self._lock:
            for container in self.containers.values():
                self._kill(container)
            self.containers.clear()
        self.sandbox.remove_scrape_target(f"kube-state-metrics-{self.namespace}")

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(rest.KubeError, OSError):
                self.sync()
            self._stop.wait(self.poll_seconds)

    # ------------------------------------------------------------------------ one pass
    def sync(self) -> None:
        pods = self.api.get(f"/api/v1/namespaces/{self.namespace}/pods").get("items", [])
        wanted: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        for pod in pods:
            if pod.get("status", {}).get("phase") != "Running" or pod["metadata"].get("deletionTimestamp"):
                continue
            for container in pod["spec"].get("containers", []):
                if image_name(container.get("image", "")) in self.commands:
                    wanted[f"{pod['metadata']['name']}/{container['name']}"] = (pod, container)
        with self._lock:
            for key in set(self.containers) - set(wanted):
                self._kill(self.containers.pop(key))
            for key, (pod, wanted_container) in wanted.items():
                if key not in self.containers:
                    self.containers[key] = self._create(pod, wanted_container)
                self._tend(self.containers[key])

    def _create(self, pod: Mapping[str, Any], container_spec: Mapping[str, Any]) -> Container:
        port = processes.free_port()
        env = {e["name"]: str(e.get("value", "")) for e in container_spec.get("env", []) if "name" in e}
        limit = container_spec.get("resources", {}).get("limits", {}).get("memory")
        meta = pod["metadata"]
        container = Container(
            namespace=self.namespace,
            pod=meta["name"],
            name=container_spec["name"],
            track=meta.get("labels", {}).get("track", ""),
            argv=self.commands[image_name(container_spec["image"])](container_spec, port),
            env=env,
            port=port,
            log=self.sandbox.logs_dir / "pods" / f"{meta['name']}-{container_spec['name']}.log",
            memory_limit=memory_quantity(limit) if limit else None,
        )
        labels = {"namespace": container.namespace, "pod": container.pod, "container": container.name}
        if container.track:
            labels["track"] = container.track
        self.sandbox.add_scrape_target(container.job, [container.address], labels)
        return container

    def _tend(self, container: Container) -> None:
        """Start, watch and restart one container, recording terminations like the kubelet."""
        now = time.monotonic()
        if container.popen is None:
            if now >= container.restart_at:
                self._launch(container)
            return
        returncode = container.popen.poll()
        if returncode is not None:
            self._record(container, "Error" if returncode else "Completed", exit_code(returncode))
            return
        if container.memory_limit and _rss_bytes(container.pid) > container.memory_limit:
            with contextlib.suppress(ProcessLookupError):
                container.popen.send_signal(signal.SIGKILL)
            container.popen.wait(timeout=10)
            self._record(container, "OOMKilled", 137)

    def _launch(self, container: Container) -> None:
        container.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **container.env}
        with container.log.open("ab") as out:
            container.popen = subprocess.Popen(
                container.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=env, start_new_session=True,
            )  # fmt: skip
        container.pid = container.popen.pid

    def _record(self, container: Container, reason: str, code: int) -> None:
        container.restarts += 1
        container.last_reason = reason
        container.last_exit_code = code
        container.popen = None
        container.pid = 0
        container.restart_at = time.monotonic() + RESTART_BACKOFF_SECONDS

    def _kill(self, container: Container) -> None:
        if container.popen is not None:
            container.popen.terminate()
            try:
                container.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                container.popen.kill()
                container.popen.wait(timeout=5)
            container.popen = None
        self.sandbox.remove_scrape_target(container.job)

    # ------------------------------------------------------------------------ queries
    def endpoints(self, pod_names: set[str]) -> list[str]:
        """Addresses of the running processes of the given pods (what a Service's endpoints hold)."""
        with self._lock:
            return sorted(
                c.address for c in self.containers.values() if c.pod in pod_names and c.popen is not None
            )

    def snapshot(self) -> list[Container]:
        with self._lock:
            return list(self.containers.values())


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


class _KubeStateCollector(Collector):
    """kube-state-metrics' container status series, computed from the runner's records."""

    def __init__(self, runner: PodRunner) -> None:
        self.runner = runner

    def collect(self) -> Any:
        labels = ["namespace", "pod", "container"]
        restarts = CounterMetricFamily(
            "kube_pod_container_status_restarts",
            "The number of container restarts per container.",
            labels=labels,
        )
        reason = GaugeMetricFamily(
            "kube_pod_container_status_last_terminated_reason",
            "Describes the last reason the container was in terminated state.",
            labels=[*labels, "reason"],
        )
        code = GaugeMetricFamily(
            "kube_pod_container_status_last_terminated_exitcode",
            "Describes the exit code for the last container in terminated state.",
            labels=labels,
        )
        for c in self.runner.snapshot():
            key = [c.namespace, c.pod, c.name]
            restarts.add_metric(key, c.restarts)
            if c.last_reason:
                reason.add_metric([*key, c.last_reason], 1)
                code.add_metric(key, c.last_exit_code)
        yield restarts
        yield reason
        yield code
