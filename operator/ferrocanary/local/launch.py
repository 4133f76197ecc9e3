"""What each sandbox component is started with: its argv, the URL that says it is healthy, and how
long it may take to get there.

Pure planning: nothing here writes a file or starts a process (``Sandbox`` does both), so the plan
can be read and tested without binaries. One function per component, in start-up order: each later
component talks to the ones before it (the apiserver to etcd, the controllers and kwok to the
apiserver through the kubeconfig written once the apiserver is up). Every listener is 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ferrocanary.local import certs
from ferrocanary.local.toolchain import Toolchain

FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"


@dataclass(frozen=True)
class Launch:
    """One component's start: argv, health URL ("" = process liveness only), start-up timeout."""

    name: str
    argv: list[str]
    health: str
    timeout: float


@dataclass(frozen=True)
class Inputs:
    """Everything the argvs are built from: binaries, ports, the sandbox's directory and PKI."""

    toolchain: Toolchain
    ports: dict[str, int]
    directory: Path
    kubeconfig: Path
    pki: certs.Pki

    @property
    def apiserver_url(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def prometheus_dir(self) -> Path:
        return self.directory / "prometheus"


def etcd(i: Inputs) -> Launch:
    client = f"http://127.0.0.1:{i.ports['etcd']}"
    peer = f"http://127.0.0.1:{i.ports['etcd-peer']}"
    argv = [
        str(i.toolchain.path("etcd")),
        "--name=sandbox",
        f"--data-dir={i.directory / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=sandbox={peer}",
        # A throwaway cluster: losing data on a power cut costs nothing, fsync costs every write.
        "--unsafe-no-fsync",
        "--quota-backend-bytes=4294967296",
    ]
    return Launch("etcd", argv, f"{client}/health", 60.0)


def kube_apiserver(i: Inputs) -> Launch:
    pki = i.pki
    argv = [
        str(i.toolchain.path("kubernetes", "kube-apiserver")),
        f"--etcd-servers=http://127.0.0.1:{i.ports['etcd']}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={i.ports['apiserver']}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        f"--client-ca-file={pki.ca_cert}",
        "--authorization-mode=Node,RBAC",
        "--allow-privileged=true",
        "--service-cluster-ip-range=10.96.0.0/16",
        f"--service-account-issuer={i.apiserver_url}",
        f"--service-account-key-file={pki.sa_public}",
        f"--service-account-signing-key-file={pki.sa_private}",
        f"--cert-dir={i.directory / 'apiserver-certs'}",
        # A real node's kubelet accepts the admin's certificate (logs, exec); kwok ignores both.
        f"--kubelet-client-certificate={pki.admin_cert}",
        f"--kubelet-client-key={pki.admin_key}",
        "--kubelet-preferred-address-types=InternalIP",
        "--profiling=false",
    ]
    # The first start creates every built-in type in etcd: give it twice the others' time.
    return Launch("kube-apiserver", argv, f"{i.apiserver_url}/readyz", 120.0)


def _kubeconfig_flags(i: Inputs) -> list[str]:
    """The controllers authenticate, and check their callers, as the sandbox's admin."""
    return [
        f"--kubeconfig={i.kubeconfig}",
        f"--authentication-kubeconfig={i.kubeconfig}",
        f"--authorization-kubeconfig={i.kubeconfig}",
    ]


def kube_controller_manager(i: Inputs) -> Launch:
    port = i.ports["controller-manager"]
    argv = [
        str(i.toolchain.path("kubernetes", "kube-controller-manager")),
        *_kubeconfig_flags(i),
        "--leader-elect=false",
        f"--service-account-private-key-file={i.pki.sa_private}",
        f"--root-ca-file={i.pki.ca_cert}",
        "--use-service-account-credentials=true",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={i.directory / 'kcm-certs'}",
        "--profiling=false",
    ]
    return Launch("kube-controller-manager", argv, f"https://127.0.0.1:{port}/healthz", 60.0)


def kube_scheduler(i: Inputs) -> Launch:
    port = i.ports["scheduler"]
    argv = [
        str(i.toolchain.path("kubernetes", "kube-scheduler")),
        *_kubeconfig_flags(i),
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={i.directory / 'scheduler-certs'}",
        "--profiling=false",
    ]
    return Launch("kube-scheduler", argv, f"https://127.0.0.1:{port}/healthz", 60.0)


def kwok(i: Inputs) -> Launch:
    port = i.ports["kwok"]
    argv = [
        str(i.toolchain.path("kwok")),
        f"--kubeconfig={i.kubeconfig}",
        # Only the one annotated fake Node: kwok never pretends to be a kubelet for anything else.
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
        "--cidr=10.244.0.0/16",
        "--node-ip=10.0.0.1",
        f"--server-address=127.0.0.1:{port}",
        # Heartbeat through a node Lease, as a kubelet does. Without it the fake Node's status is
        # refreshed only every ~55 s, past the node controller's grace period: the Node flaps to
        # NotReady, its pods are marked not Ready and never become Ready again, and Deployments
        # report no available replicas.
        "--node-lease-duration-seconds=40",
    ]
    return Launch("kwok", argv, f"http://127.0.0.1:{port}/healthz", 60.0)


def prometheus(i: Inputs) -> Launch:
    port = i.ports["prometheus"]
    argv = [
        str(i.toolchain.path("prometheus")),
        f"--config.file={i.prometheus_dir / 'prometheus.yml'}",
        f"--storage.tsdb.path={i.prometheus_dir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        # Lets the tests reload rules without restarting Prometheus.
        "--web.enable-lifecycle",
        "--storage.tsdb.retention.time=2d",
    ]
    return Launch("prometheus", argv, f"http://127.0.0.1:{port}/-/ready", 60.0)


# Start-up order: each component needs the ones before it.
STEPS: tuple[Callable[[Inputs], Launch], ...] = (
    etcd,
    kube_apiserver,
    kube_controller_manager,
    kube_scheduler,
    kwok,
    prometheus,
)


def plan(inputs: Inputs) -> list[Launch]:
    """Every component's launch, in start-up order."""
    return [step(inputs) for step in STEPS]
