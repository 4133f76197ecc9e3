"""One named sandbox: etcd, the control plane, its nodes, and Prometheus on 127.0.0.1.

Nodes are either kwok's fakes (``nodes="kwok"``, the default: pods go Running without running
anything, enough for many canaries at once) or one real node (``nodes="real"``: containerd, the
kubelet, kube-proxy and kube-state-metrics, see ``node`` and ``host``), which needs root and is one
per machine, because kube-proxy's iptables chains have fixed names.

Owns the sandbox's directory (``<cache>/sandboxes/<name>``) and its ``state.json``, which records
for each component the pid, the executable, the exact argv and the ports, so that ``down`` stops
exactly the processes ``up`` started, and a single component can be stopped and started again
(tests stop Prometheus mid-canary). Nothing listens anywhere but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import ssl
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ferrocanary.local import certs, launch, node, processes, realnode
from ferrocanary.local.launch import FAKE_NODE_ANNOTATION
from ferrocanary.local.toolchain import Toolchain, cache_dir

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "prometheus")
REAL_COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "prometheus",
    "containerd",
    "kubelet",
    "kube-proxy",
    "kube-state-metrics",
)
NODE_KINDS = ("kwok", "real")
SCRAPE_INTERVAL = "1s"


class SandboxError(RuntimeError):
    """Something about the sandbox is wrong; the message says what and where to look."""


@dataclass
class ComponentState:
    name: str
    argv: list[str]
    pid: int = 0
    health: str = ""  # URL probed for health ("" = process liveness only)
    log: str = ""
    env: dict[str, str] = field(default_factory=dict)  # set over this process's environment

    def running(self) -> bool:
        return self.pid > 0 and processes.is_running(self.pid, self.argv[0])


@dataclass
class SandboxState:
    name: str
    ports: dict[str, int] = field(default_factory=dict)
    components: dict[str, ComponentState] = field(default_factory=dict)
    nodes: str = "kwok"
    host: dict[str, Any] = field(default_factory=dict)  # a real node's HostState, to undo at down

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "ports": self.ports,
                "components": {k: vars(v) for k, v in self.components.items()},
                "nodes": self.nodes,
                "host": self.host,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> SandboxState:
        data = json.loads(text)
        return cls(
            name=data["name"],
            ports=dict(data["ports"]),
            components={k: ComponentState(**v) for k, v in data["components"].items()},
            nodes=data.get("nodes", "kwok"),
            host=dict(data.get("host") or {}),
        )


ProgressCallback = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


class Sandbox:
    """A local sandbox by name. Construction touches nothing; ``up``/``down`` do the work."""

    def __init__(
        self, name: str = "default", toolchain: Toolchain | None = None, nodes: str = "kwok"
    ) -> None:
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            raise SandboxError(f"invalid sandbox name {name!r}: use letters, digits, '-' and '_'")
        if nodes not in NODE_KINDS:
            raise SandboxError(f"nodes: {nodes!r} is not one of {', '.join(NODE_KINDS)}")
        self.name = name
        self.nodes = nodes
        self.toolchain = toolchain or Toolchain()
        self.dir = cache_dir() / "sandboxes" / name

    # ------------------------------------------------------------------------------ paths
    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def bin_dir(self) -> Path:
        return self.dir / "bin"

    @property
    def logs_dir(self) -> Path:
        return self.dir / "logs"

    @property
    def targets_dir(self) -> Path:
        return self.dir / "prometheus" / "targets"

    @property
    def rules_dir(self) -> Path:
        return self.dir / "prometheus" / "rules"

    def load_state(self) -> SandboxState | None:
        try:
            return SandboxState.from_json(self.state_file.read_text())
        except FileNotFoundError:
            return None

    def _save(self, state: SandboxState) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(state.to_json())
        tmp.replace(self.state_file)

    @property
    def prometheus_url(self) -> str:
        state = self._require_state()
        return f"http://127.0.0.1:{state.ports['prometheus']}"

    @property
    def apiserver_url(self) -> str:
        state = self._require_state()
        return f"https://127.0.0.1:{state.ports['apiserver']}"

    def _require_state(self) -> SandboxState:
        state = self.load_state()
        if state is None:
            raise SandboxError(
                f"sandbox {self.name!r} is not up (run `ferrocanary local up --name {self.name}`)"
            )
        return state

    def env(self) -> dict[str, str]:
        """The variables a shell needs to use this sandbox."""
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "PROMETHEUS_URL": self.prometheus_url,
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    # ------------------------------------------------------------------------------ health
    def _tls_client(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.dir / "pki" / "ca.crt"))
        context.load_cert_chain(str(self.dir / "pki" / "admin.crt"), str(self.dir / "pki" / "admin.key"))
        return context

    @staticmethod
    def _insecure() -> ssl.SSLContext:
        # The controller-manager and scheduler serve /healthz with their own self-signed certs.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    def _healthy(self, component: ComponentState) -> bool:
        if not component.running():
            return False
        if not component.health:
            return True
        if component.name == "kube-apiserver":
            return processes.http_ok(component.health, self._tls_client())
        context = self._insecure() if component.health.startswith("https") else None
        return processes.http_ok(component.health, context)

    def status(self) -> dict[str, str]:
        """Each component's health: "healthy", "unhealthy" (running, failing its probe) or "stopped"."""
        state = self.load_state()
        if state is None:
            return {}
        result = {}
        for name, component in state.components.items():
            if self._healthy(component):
                result[name] = "healthy"
            elif component.running():
                result[name] = "unhealthy"
            else:
                result[name] = "stopped"
        return result

    def is_up(self) -> bool:
        status = self.status()
        state = self.load_state()
        expected = REAL_COMPONENTS if state is not None and state.nodes == "real" else COMPONENTS
        return bool(status) and set(status) == set(expected) and all(v == "healthy" for v in status.values())

    # ------------------------------------------------------------------------------ up / down
    def up(self, progress: ProgressCallback = _quiet, ports: dict[str, int] | None = None) -> bool:
        """Start the sandbox; return False if it was already up (then nothing is touched)."""
        if self.is_up():
            return False
        if self.load_state() is not None:
            progress("a previous run left this sandbox half up: stopping it first")
            self.down()
        missing = self.toolchain.missing(self.nodes)  # kwok's sandbox needs no real node's parts
        if missing:
            names = ", ".join(c.name for c in missing)
            raise SandboxError(f"toolchain not built ({names}): run `ferrocanary local build` first")
        requested = dict(ports or {})
        for component, port in requested.items():
            if not processes.port_is_free(port):
                raise SandboxError(
                    f"{component}: port 127.0.0.1:{port} is already taken; choose another or omit it"
                )
        if self.nodes == "real":
            realnode.preflight(self)
        self.dir.mkdir(parents=True, exist_ok=True)
        state = SandboxState(name=self.name, nodes=self.nodes)
        for key in (
            "etcd",
            "etcd-peer",
            "apiserver",
            "controller-manager",
            "scheduler",
            "kwok",
            "prometheus",
            *(node.NODE_PORTS if self.nodes == "real" else ()),
        ):
            state.ports[key] = requested.get(key) or processes.free_port()
        self._save(state)
        try:
            self._start_all(state, progress)
        except BaseException:
            progress("start-up failed: stopping what was started")
            self._stop_all(state)
            if state.nodes == "real":
                realnode.teardown(self, state)
            self.state_file.unlink(missing_ok=True)  # logs stay, for the message that names them
            raise
        return True

    def _start_all(self, state: SandboxState, progress: ProgressCallback) -> None:
        pki_dir = self.dir / "pki"
        pki_dir.mkdir(exist_ok=True)
        progress("generating throwaway certificates")
        pki = certs.generate(pki_dir)
        self._link_binaries()
        inputs = launch.Inputs(self.toolchain, state.ports, self.dir, self.kubeconfig, pki)
        real = state.nodes == "real"
        self._write_prometheus_config(
            state.ports["prometheus"], node.prometheus_scrape_configs(inputs) if real else []
        )
        for planned in launch.plan(inputs):
            if planned.name == "kwok" and real:
                continue
            step = (
                node.prometheus_with_discovery(inputs) if planned.name == "prometheus" and real else planned
            )
            progress(f"starting {step.name}")
            self._launch(state, step.name, step.argv, step.health, step.timeout)
            if step.name == "kube-apiserver":
                self._write_kubeconfig(state, pki)
            if step.name == "kwok":
                progress("creating the fake Node")
                self._create_fake_node()
        progress("installing the Gateway API CRDs")
        self.kubectl("apply", "--server-side", "-f", str(self.toolchain.path("gateway-api")))
        if state.nodes == "real":
            realnode.start(self, state, inputs, progress)

    def _launch(
        self,
        state: SandboxState,
        name: str,
        argv: list[str],
        health: str,
        timeout: float,
        *,
        env: dict[str, str] | None = None,
    ) -> None:
        log = self.logs_dir / f"{name}.log"
        extra = dict(env or {})
        started = processes.start(name, argv, log, env={**os.environ, **extra} if extra else None)
        component = ComponentState(
            name=name, argv=argv, pid=started.pid, health=health, log=str(log), env=extra
        )
        state.components[name] = component
        self._save(state)
        try:
            processes.wait_until(started, lambda: self._healthy(component), timeout)
        except processes.ComponentError as exc:
            raise SandboxError(str(exc)) from None

    def down(self) -> bool:
        """Stop every process of this sandbox by pid and remove its directory. Harmless twice."""
        state = self.load_state()
        if state is not None:
            self._stop_all(state)
            if state.nodes == "real":
                realnode.teardown(self, state)
        existed = self.dir.exists()
        shutil.rmtree(self.dir, ignore_errors=True)
        return existed

    @staticmethod
    def _stop_all(state: SandboxState) -> None:
        order = REAL_COMPONENTS if state.nodes == "real" else COMPONENTS
        for name in reversed(order):
            component = state.components.get(name)
            if component and component.pid:
                processes.stop(component.pid, component.argv[0])

    def stop_component(self, name: str) -> None:
        state = self._require_state()
        component = state.components[name]
        processes.stop(component.pid, component.argv[0])
        component.pid = 0
        self._save(state)

    def start_component(self, name: str, timeout: float = 60.0) -> None:
        """Start one stopped component again with its recorded argv (same ports, same data)."""
        state = self._require_state()
        component = state.components[name]
        if component.running():
            return
        self._launch(state, name, component.argv, component.health, timeout, env=component.env)

    # ------------------------------------------------------------------------------ helpers
    def _link_binaries(self) -> None:
        self.bin_dir.mkdir(exist_ok=True)
        for component, file in (
            ("kubernetes", "kubectl"),
            ("helm", "helm"),
            ("prometheus", "promtool"),
            ("prometheus", "prometheus"),
            ("kwok", "kwok"),
        ):
            link = self.bin_dir / file
            link.unlink(missing_ok=True)
            link.symlink_to(self.toolchain.path(component, file))

    def _write_kubeconfig(self, state: SandboxState, pki: certs.Pki) -> None:
        context = f"ferrocanary-{self.name}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": context,
                    "cluster": {
                        "server": f"https://127.0.0.1:{state.ports['apiserver']}",
                        "certificate-authority": str(pki.ca_cert),
                    },
                }
            ],
            "users": [
                {
                    "name": f"{context}-admin",
                    "user": {"client-certificate": str(pki.admin_cert), "client-key": str(pki.admin_key)},
                }
            ],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": context, "user": f"{context}-admin", "namespace": "default"},
                }
            ],
            "current-context": context,
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
        self.kubeconfig.chmod(0o600)

    def _create_fake_node(self, name: str = "kwok-node-0") -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {FAKE_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "type": "kwok",
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "kubernetes.io/role": "agent",
                },
            },
            "status": {
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            },
        }
        self.kubectl("apply", "-f", "-", input_text=json.dumps(node))

    def kubectl(self, *args: str, input_text: str | None = None, check: bool = True) -> str:
        """Run the sandbox's own kubectl against it; raise SandboxError with its stderr on failure."""
        argv = [str(self.toolchain.path("kubernetes", "kubectl")), f"--kubeconfig={self.kubeconfig}", *args]
        proc = subprocess.run(
            argv, input=input_text, capture_output=True, text=True, timeout=120, check=False
        )
        if check and proc.returncode != 0:
            raise SandboxError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def _write_prometheus_config(self, port: int, extra: list[dict[str, Any]] | None = None) -> None:
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        self.rules_dir.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": SCRAPE_INTERVAL,
                "scrape_timeout": SCRAPE_INTERVAL,
                "evaluation_interval": SCRAPE_INTERVAL,
            },
            "rule_files": [str(self.rules_dir / "*.yml")],
            "scrape_configs": [
                {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]},
                {
                    # Targets added at run time (the workload's arms, the operator): one JSON file each.
                    "job_name": "sandbox",
                    "file_sd_configs": [
                        {"files": [str(self.targets_dir / "*.json")], "refresh_interval": "5s"}
                    ],
                },
                *(extra or []),
            ],
        }
        (self.dir / "prometheus" / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))

    def add_scrape_target(self, job: str, targets: list[str], labels: dict[str, str] | None = None) -> Path:
        """Have Prometheus scrape ``targets`` (host:port) under ``job`` with extra target labels."""
        if not job or not all(c.isalnum() or c in "-_" for c in job):
            raise SandboxError(f"invalid scrape job name {job!r}")
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        path = self.targets_dir / f"{job}.json"
        tmp = path.with_suffix(".tmp")  # rename is atomic: Prometheus never reads half a file
        tmp.write_text(json.dumps([{"targets": targets, "labels": {"job": job, **(labels or {})}}]))
        tmp.replace(path)
        return path

    def remove_scrape_target(self, job: str) -> None:
        (self.targets_dir / f"{job}.json").unlink(missing_ok=True)


@contextlib.contextmanager
def running(name: str, progress: ProgressCallback = _quiet) -> Iterator[Sandbox]:
    """A sandbox that is up for the ``with`` block and stopped afterwards (also on errors)."""
    sandbox = Sandbox(name)
    sandbox.up(progress)
    try:
        yield sandbox
    finally:
        sandbox.down()
