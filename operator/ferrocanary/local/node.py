"""A real node's configuration and start-up: containerd, the kubelet, kube-proxy, kube-state-metrics.

Pure planning, like ``launch``: each function writes the component's config file under the sandbox's
folder and returns its ``Launch``; nothing is started here. Everything a node keeps is under
``<sandbox>/node``: containerd's root, state and socket, the kubelet's root and certificates, the CNI
configuration. Listeners are 127.0.0.1 where the component allows it; the kubelet listens on the
node's IP (the bridge's own address, private to this machine) because the kubelet refuses a loopback
node IP and the apiserver reaches it there for ``kubectl logs`` and ``exec``.

This machine has no CAP_SYS_RESOURCE: containerd, the kubelet and kube-proxy are told not to lower
their OOM score (``restrict_oom_score_adj``, ``oomScoreAdj: 0``), and kube-proxy to leave the
conntrack limits and ``route_localnet`` as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from ferrocanary.local import images
from ferrocanary.local.host import HostState
from ferrocanary.local.launch import Inputs, Launch, prometheus
from ferrocanary.local.toolchain import CNI_PLUGINS, DEBIAN_BASE_REPOSITORY, Toolchain

NODE_NAME = "real-node-0"
NODE_PORTS = (
    "kubelet",
    "kubelet-healthz",
    "kube-proxy-metrics",
    "kube-proxy-healthz",
    "kube-state-metrics",
    "kube-state-metrics-telemetry",
)


def containerd_socket(sandbox_dir: Path) -> Path:
    """The node's containerd socket under the sandbox's folder (also for a teardown after a crash)."""
    return sandbox_dir / "node" / "containerd" / "containerd.sock"


@dataclass(frozen=True)
class NodeInputs:
    """The sandbox's inputs plus the host's bridge and cgroup root for this node."""

    base: Inputs
    host: HostState

    @property
    def directory(self) -> Path:
        return self.base.directory / "node"

    @property
    def socket(self) -> Path:
        return containerd_socket(self.base.directory)

    def path(self, component: str, file: str | None = None) -> Path:
        return self.base.toolchain.path(component, file)

    def search_path(self) -> str:
        """PATH for the node's processes: the shim, runc, iptables, then the machine's own tools."""
        dirs = [self.path("containerd").parent, self.path("runc").parent, self.path("iptables").parent]
        return ":".join([*map(str, dirs), "/usr/sbin", "/usr/bin", "/sbin", "/bin"])


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def cni_config(n: NodeInputs) -> dict[str, object]:
    return {
        "cniVersion": "1.0.0",
        "name": f"ferrocanary-{n.host.bridge}",
        "plugins": [
            {
                "type": "bridge",
                "bridge": n.host.bridge,
                "isGateway": True,
                # Pods talk to this machine and each other only; masquerading would add NAT rules.
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": n.host.subnet, "gateway": n.host.gateway}]],
                    "dataDir": str(n.directory / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def containerd_config(n: NodeInputs) -> str:
    root = n.directory / "containerd"
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{root / "root"}"
state = "{root / "state"}"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "{n.socket}"

[ttrpc]
  address = "{root / "containerd.sock.ttrpc"}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{root / "opt"}"

[{cri}]
  sandbox_image = "{images.PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false

[{cri}.cni]
  bin_dir = "{n.path("cni-plugins", CNI_PLUGINS[0]).parent}"
  conf_dir = "{n.directory / "cni" / "net.d"}"

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  BinaryName = "{n.path("runc")}"
  SystemdCgroup = false
"""


def containerd(n: NodeInputs) -> Launch:
    config = _write(n.directory / "containerd" / "config.toml", containerd_config(n))
    _write(n.directory / "cni" / "net.d" / "10-ferrocanary.conflist", json.dumps(cni_config(n), indent=2))
    argv = [str(n.path("containerd")), f"--config={config}"]
    return Launch("containerd", argv, "", 60.0)


def kubelet_config(n: NodeInputs) -> dict[str, object]:
    ports = n.base.ports
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": n.host.gateway,
        "port": ports["kubelet"],
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": ports["kubelet-healthz"],
        "containerRuntimeEndpoint": f"unix://{n.socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{n.host.cgroup}",
        "failSwapOn": False,
        "oomScoreAdj": 0,
        # The machine's settings stay; the ones the kubelet changes anyway are restored by `down`.
        "protectKernelDefaults": False,
        "resolvConf": "",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(n.base.pki.ca_cert)},
        },
        "authorization": {"mode": "Webhook"},
        # A shared machine's disk fills and empties under other work: never evict for it.
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "0%", "imagefs.available": "0%"},
        "imageGCHighThresholdPercent": 100,
        "serializeImagePulls": False,
        "nodeStatusReportFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "5s",
        "fileCheckFrequency": "5s",
        "localStorageCapacityIsolation": False,
        "maxPods": 60,
    }


def kubelet(n: NodeInputs) -> Launch:
    config = _write(n.directory / "kubelet" / "config.yaml", yaml.safe_dump(kubelet_config(n)))
    argv = [
        str(n.path("kubelet")),
        f"--config={config}",
        f"--kubeconfig={n.base.kubeconfig}",
        f"--root-dir={n.directory / 'kubelet' / 'root'}",
        f"--cert-dir={n.directory / 'kubelet' / 'pki'}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={n.host.gateway}",
        "--node-labels=ferrocanary.io/node=real",
        # cAdvisor (inside the kubelet) asks containerd which cgroup is which container, at this
        # socket; without it, its series stop at the pod and carry no `container` label.
        f"--containerd={n.socket}",
        # cAdvisor samples each container every 10 s by default (its series carry the sample's own
        # timestamp): a canary judging 5-second blocks on the sandbox needs every block's CPU.
        "--housekeeping-interval=1s",
    ]
    return Launch("kubelet", argv, f"http://127.0.0.1:{n.base.ports['kubelet-healthz']}/healthz", 120.0)


def kube_proxy_config(n: NodeInputs) -> dict[str, object]:
    ports = n.base.ports
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(n.base.kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": n.host.subnet,
        "bindAddress": "127.0.0.1",
        "healthzBindAddress": f"127.0.0.1:{ports['kube-proxy-healthz']}",
        "metricsBindAddress": f"127.0.0.1:{ports['kube-proxy-metrics']}",
        "oomScoreAdj": 0,
        # 0 = leave the machine's conntrack limits and timeouts alone.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        # True would set net.ipv4.conf.all.route_localnet for NodePorts on 127.0.0.1.
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False, "syncPeriod": "5s"},
        "nodePortAddresses": [n.host.subnet],
    }


def kube_proxy(n: NodeInputs) -> Launch:
    config = _write(n.directory / "kube-proxy" / "config.yaml", yaml.safe_dump(kube_proxy_config(n)))
    argv = [str(n.path("kubelet", "kube-proxy")), f"--config={config}"]
    return Launch("kube-proxy", argv, f"http://127.0.0.1:{n.base.ports['kube-proxy-healthz']}/healthz", 60.0)


def kube_state_metrics(n: NodeInputs) -> Launch:
    port = n.base.ports["kube-state-metrics"]
    argv = [
        str(n.path("kube-state-metrics")),
        f"--kubeconfig={n.base.kubeconfig}",
        "--host=127.0.0.1",
        f"--port={port}",
        "--telemetry-host=127.0.0.1",
        f"--telemetry-port={n.base.ports['kube-state-metrics-telemetry']}",
    ]
    return Launch("kube-state-metrics", argv, f"http://127.0.0.1:{port}/healthz", 60.0)


def plan(n: NodeInputs) -> list[Launch]:
    """The node's components in start-up order (after the control plane)."""
    return [containerd(n), kubelet(n), kube_proxy(n), kube_state_metrics(n)]


def image_archives(n: NodeInputs) -> list[Path]:
    """The images every node has before any pod: the pods' sandbox, the smoke-test busybox, and the
    Debian base the project's images build on (made once by the toolchain, imported as it is)."""
    out = [n.path("debian-base")]
    for spec in (images.pause_image(n.path("pause")), images.busybox_image(n.path("busybox"))):
        archive = n.directory / "images" / f"{spec.reference.rsplit('/', 1)[-1].replace(':', '_')}.tar"
        images.write_archive(spec, archive)
        out.append(archive)
    return out


def debian_base_image(toolchain: Toolchain) -> str:
    return f"{DEBIAN_BASE_REPOSITORY}:{toolchain.debian_base_tag()}"


def prometheus_scrape_configs(base: Inputs) -> list[dict[str, object]]:
    """What a cluster's Prometheus scrapes on its nodes, found through the apiserver as there.

    cAdvisor through each Node's kubelet (``container_cpu_usage_seconds_total``,
    ``container_memory_working_set_bytes``, with cAdvisor's own ``namespace``, ``pod``, ``container``
    and ``image`` labels), pods that ask for it with the usual ``prometheus.io/scrape``, ``port`` and
    ``path`` annotations (labelled ``namespace``, ``pod`` and their own labels), and
    kube-state-metrics, whose ``namespace``/``pod`` labels name the subject, not the target
    (``honor_labels``). kube-state-metrics runs beside the control plane here, not in a pod, so it
    is the one static target.
    """
    pki = base.pki
    client_tls = {
        "ca_file": str(pki.ca_cert),
        "cert_file": str(pki.admin_cert),
        "key_file": str(pki.admin_key),
    }
    sd = {"api_server": base.apiserver_url, "tls_config": client_tls}
    return [
        {
            "job_name": "kubernetes-nodes-cadvisor",
            "scheme": "https",
            "metrics_path": "/metrics/cadvisor",
            # The kubelet serves a self-signed certificate; it checks our client certificate.
            "tls_config": {**client_tls, "insecure_skip_verify": True},
            "kubernetes_sd_configs": [{**sd, "role": "node"}],
            "relabel_configs": [
                {"action": "labelmap", "regex": "__meta_kubernetes_node_label_(.+)"},
                {"source_labels": ["__meta_kubernetes_node_name"], "target_label": "node"},
            ],
        },
        {
            "job_name": "kubernetes-pods",
            # Prometheus 3 refuses a response without a Content-Type unless told what to assume.
            "fallback_scrape_protocol": "PrometheusText0.0.4",
            "kubernetes_sd_configs": [{**sd, "role": "pod"}],
            "relabel_configs": [
                {
                    "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
                    "action": "keep",
                    "regex": "true",
                },
                {
                    "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"],
                    "target_label": "__metrics_path__",
                    "regex": "(.+)",
                },
                {
                    "source_labels": ["__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port"],
                    "regex": "([^:]+)(?::\\d+)?;(\\d+)",
                    "replacement": "$1:$2",
                    "target_label": "__address__",
                },
                {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"},
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            ],
        },
        {
            "job_name": "kube-state-metrics",
            "honor_labels": True,
            "static_configs": [{"targets": [f"127.0.0.1:{base.ports['kube-state-metrics']}"]}],
        },
    ]


def prometheus_with_discovery(base: Inputs) -> Launch:
    """The sandbox's Prometheus, as built with Kubernetes service discovery (Debian's has none)."""
    step = prometheus(base)
    return Launch(
        step.name, [str(base.toolchain.path("prometheus-k8s-sd")), *step.argv[1:]], step.health, step.timeout
    )
