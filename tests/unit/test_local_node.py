"""A real node's plan and images, read without starting anything (the node itself: test_real_node)."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import yaml

from ferrocanary.local import certs, images, launch, node
from ferrocanary.local.host import HostState
from ferrocanary.local.toolchain import Toolchain


def _paths_only_pki(root: Path) -> certs.Pki:
    names = "ca_cert ca_key serving_cert serving_key admin_cert admin_key sa_public sa_private"
    return certs.Pki(*(root / "pki" / n for n in names.split()))


def _inputs(tmp_path: Path) -> node.NodeInputs:
    keys = ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler", "kwok", "prometheus")
    ports = dict(zip((*keys, *node.NODE_PORTS), range(21001, 21100), strict=False))
    directory = tmp_path / "sandbox"
    base = launch.Inputs(Toolchain(), ports, directory, directory / "kubeconfig", _paths_only_pki(directory))
    return node.NodeInputs(
        base, HostState(bridge="fc12345678", subnet="10.231.0.0/24", cgroup="ferrocanary-t")
    )


def test_the_node_listens_on_loopback_or_its_own_bridge_and_keeps_the_machines_settings(
    tmp_path: Path,
) -> None:
    n = _inputs(tmp_path)
    steps = node.plan(n)
    assert [s.name for s in steps] == ["containerd", "kubelet", "kube-proxy", "kube-state-metrics"]
    kubelet = yaml.safe_load((n.directory / "kubelet" / "config.yaml").read_text())
    assert kubelet["address"] == "10.231.0.1"  # the bridge's own address, never 0.0.0.0
    assert kubelet["healthzBindAddress"] == "127.0.0.1"
    assert kubelet["readOnlyPort"] == 0
    assert kubelet["cgroupRoot"] == "/ferrocanary-t"
    assert kubelet["oomScoreAdj"] == 0  # no CAP_SYS_RESOURCE here: a negative score is refused
    assert kubelet["authentication"]["anonymous"]["enabled"] is False
    proxy = yaml.safe_load((n.directory / "kube-proxy" / "config.yaml").read_text())
    assert proxy["mode"] == "iptables"
    assert proxy["iptables"]["localhostNodePorts"] is False  # would set route_localnet
    assert proxy["conntrack"]["maxPerCore"] == 0
    for address in (proxy["bindAddress"], proxy["healthzBindAddress"], proxy["metricsBindAddress"]):
        assert address.startswith("127.0.0.1")
    containerd = (n.directory / "containerd" / "config.toml").read_text()
    assert "restrict_oom_score_adj = true" in containerd
    assert f'address = "{n.socket}"' in containerd
    assert str(n.directory) in containerd.split("[grpc]")[0]  # root and state under the sandbox
    assert f'sandbox_image = "{images.PAUSE_IMAGE}"' in containerd
    cni = json.loads((n.directory / "cni" / "net.d" / "10-ferrocanary.conflist").read_text())
    bridge = cni["plugins"][0]
    assert (bridge["bridge"], bridge["ipMasq"]) == ("fc12345678", False)
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.231.0.0/24", "gateway": "10.231.0.1"}]]
    ksm = next(s for s in steps if s.name == "kube-state-metrics")
    assert "--host=127.0.0.1" in ksm.argv
    assert "--telemetry-host=127.0.0.1" in ksm.argv


def test_an_image_archive_is_an_oci_layout_that_names_its_reference(tmp_path: Path) -> None:
    binary = tmp_path / "busybox"
    binary.write_bytes(b"\x7fELF not really")
    archive = tmp_path / "bb.tar"
    images.write_archive(images.busybox_image(binary), archive)
    with tarfile.open(archive) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    (entry,) = json.loads(files["index.json"])["manifests"]
    assert entry["annotations"]["io.containerd.image.name"] == images.BUSYBOX_IMAGE
    assert not images.BUSYBOX_IMAGE.endswith(":latest")
    for name, data in files.items():  # every blob is stored under its own digest
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]
    manifest = json.loads(files[f"blobs/sha256/{entry['digest'].split(':')[1]}"])
    config = json.loads(files[f"blobs/sha256/{manifest['config']['digest'].split(':')[1]}"])
    assert config["config"]["Cmd"] == ["/bin/sh"]
    layer_digest = manifest["layers"][0]["digest"]
    assert config["rootfs"]["diff_ids"] == [layer_digest]
    layer_path = tmp_path / "layer.tar"
    layer_path.write_bytes(files[f"blobs/sha256/{layer_digest.split(':')[1]}"])
    with tarfile.open(layer_path) as layer:
        members = {m.name: m for m in layer.getmembers()}
    assert members["bin/busybox"].mode == 0o755
    assert members["bin/sh"].issym()
    assert members["bin/sh"].linkname == "busybox"


def test_a_kwok_sandbox_needs_none_of_a_real_nodes_components() -> None:
    toolchain = Toolchain()
    kwok = {c.name for c in toolchain.needed("kwok")}
    real = {c.name for c in toolchain.needed("real")}
    node_only = {"kubelet", "containerd", "runc", "kube-state-metrics", "prometheus-k8s-sd", "buildah"}
    assert node_only <= real
    assert not node_only & kwok
    assert {"kubernetes", "etcd", "kwok", "prometheus", "helm"} <= kwok
    # `local build` (make setup) still builds every one: CI has the real node's parts once, cached.
    assert {c.name for c in toolchain.components} == real
