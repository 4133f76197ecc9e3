"""Bringing a sandbox's real node up after its control plane, and taking it and its traces away.

Owns the order: the host's bridge and cgroup root (``host``), containerd, the images every node has
(imported through containerd's own ``ctr``), the kubelet, kube-proxy and kube-state-metrics
(``node``), then waiting for the Node to be Ready; and, for a node already up, the project's images
of the code as it is now (``project_images``). The teardown runs after the processes are
stopped and also after a crash (from what ``state.json`` recorded): containers still in the node's
cgroups and their shims, the pods' network namespaces, the mounts under the sandbox's folder, the
KUBE- iptables chains, the bridge, the cgroups, and the kernel settings the kubelet changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ferrocanary.local import host, imagebuild, node
from ferrocanary.local.launch import Inputs
from ferrocanary.local.toolchain import Toolchain, cache_dir

if TYPE_CHECKING:
    from ferrocanary.local.sandbox import ProgressCallback, Sandbox, SandboxState

READY_TIMEOUT = 180.0


def _error(message: str) -> Exception:
    from ferrocanary.local.sandbox import SandboxError  # noqa: PLC0415 (sandbox imports this module)

    return SandboxError(message)


def in_cluster_operator_values(
    sandbox: Sandbox, image: str, watched: str, metrics_port: int
) -> dict[str, str]:
    """The chart's ``--set`` values for the operator's image as a pod on this node, watching ``watched``.

    hostNetwork with the apiserver's address: the sandbox's apiserver and Prometheus listen on this
    machine's loopback only, which a pod reaches on the node's network (docs/install.md)."""
    state = sandbox.load_state()
    if state is None:
        raise _error(f"sandbox {sandbox.name!r} is not up")
    repository, _, tag = image.rpartition(":")
    return {
        "image.repository": repository,
        "image.tag": tag,
        "image.pullPolicy": "Never",
        "hostNetwork": "true",
        "apiServer.host": "127.0.0.1",
        "apiServer.port": str(state.ports["apiserver"]),
        "metrics.address": "127.0.0.1",
        "metrics.port": str(metrics_port),
        "prometheus.address": sandbox.prometheus_url,
        "watchNamespaces[0]": watched,
        "dashboards.enabled": "false",
    }


def preflight(sandbox: Sandbox) -> None:
    """Root, and no other sandbox's real node on this machine (kube-proxy's chains are global)."""
    if os.geteuid() != 0:
        raise _error("nodes=real: a real node (containerd, the kubelet) needs root; use --nodes kwok")
    from ferrocanary.local.sandbox import SandboxState  # noqa: PLC0415

    for other in sorted((cache_dir() / "sandboxes").glob("*/state.json")):
        if other.parent.name == sandbox.name:
            continue
        with contextlib.suppress(OSError, ValueError, KeyError):
            state = SandboxState.from_json(other.read_text())
            if state.nodes == "real" and any(c.running() for c in state.components.values()):
                raise _error(
                    f"nodes=real: sandbox {state.name!r} already runs this machine's real node "
                    f"(one per machine); stop it with `ferrocanary local down --name {state.name}`"
                )


def start(sandbox: Sandbox, state: SandboxState, inputs: Inputs, progress: ProgressCallback) -> None:
    # The project's images first (cached by a hash of their inputs; a first build takes minutes):
    # a failed build then leaves nothing on this machine to undo.
    try:
        project_images = imagebuild.ImageBuilder(sandbox.toolchain).ensure(progress=progress)
    except (imagebuild.ImageBuildError, OSError, subprocess.SubprocessError) as exc:
        raise _error(f"the project's images did not build: {exc}") from exc
    host_state = host.plan(sandbox.name)
    state.host = dataclasses.asdict(host_state)
    sandbox._save(state)  # before touching the machine: a crash from now on is undone
    progress(f"creating bridge {host_state.bridge} ({host_state.subnet}) and cgroup /{host_state.cgroup}")
    host.create(host_state)
    state.host = dataclasses.asdict(host_state)
    sandbox._save(state)
    n = node.NodeInputs(inputs, host_state)
    env = {"PATH": n.search_path()}
    steps = node.plan(n)
    for step in steps:
        progress(f"starting {step.name}")
        sandbox._launch(state, step.name, step.argv, step.health, step.timeout, env=env)
        if step.name == "containerd":
            _wait_for(n.socket, 30.0)
            progress("importing the node's images")
            for archive in node.image_archives(n):
                ctr(n, "images", "import", str(archive))
            for built in project_images:
                _import(sandbox.toolchain, n.socket, built)
    progress(f"waiting for Node {node.NODE_NAME} to be Ready")
    _wait_ready(sandbox)


def ctr(n: node.NodeInputs, *args: str) -> str:
    return _ctr(n.base.toolchain, n.socket, *args)


def _ctr(toolchain: Toolchain, socket: Path, *args: str) -> str:
    argv = [str(toolchain.path("containerd", "ctr")), f"--address={socket}", "--namespace=k8s.io", *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise _error(f"ctr {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def _import(toolchain: Toolchain, socket: Path, built: imagebuild.Built) -> None:
    # buildah's archives name the image by its tag only (OCI's ref.name); the repository comes from
    # --base-name. Not unpacked here: the CRI unpacks an image when a container first uses it, so a
    # node (or a test) that runs none of them skips that half of the import.
    repository = built.reference.rsplit(":", 1)[0]
    archive = str(built.archive)
    _ctr(toolchain, socket, "images", "import", "--no-unpack", f"--base-name={repository}", archive)


def project_images(sandbox: Sandbox, progress: ProgressCallback) -> dict[str, str]:
    """The project's images for the code as it is now, on the running node: name -> reference.

    ``up`` imported the images of the code as it was then; an image whose inputs changed since
    (an edited operator) is built now and imported, so a pod never runs stale code or waits for an
    image the node does not have (``imagePullPolicy: Never``)."""
    try:
        built = imagebuild.ImageBuilder(sandbox.toolchain).ensure(progress=progress)
    except (imagebuild.ImageBuildError, OSError, subprocess.SubprocessError) as exc:
        raise _error(f"the project's images did not build: {exc}") from exc
    socket = node.containerd_socket(sandbox.dir)
    present = set(_ctr(sandbox.toolchain, socket, "images", "ls", "-q").split())
    for image in built:
        if image.reference not in present:
            progress(f"importing {image.reference} into the node")
            _import(sandbox.toolchain, socket, image)
    return {image.name: image.reference for image in built}


def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise _error(f"containerd did not create its socket {path} within {timeout:.0f}s")
        time.sleep(0.2)


def _wait_ready(sandbox: Sandbox) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    jsonpath = '{.status.conditions[?(@.type=="Ready")].status}'
    while time.monotonic() < deadline:
        out = sandbox.kubectl("get", "node", node.NODE_NAME, "-o", f"jsonpath={jsonpath}", check=False)
        if out.strip() == "True":
            return
        time.sleep(1.0)
    raise _error(
        f"Node {node.NODE_NAME} was not Ready within {READY_TIMEOUT:.0f}s; "
        f"see {sandbox.logs_dir / 'kubelet.log'}"
    )


def _kill_shims(socket: Path) -> None:
    """containerd's shims outlive it by design; ours name our socket on their command line."""
    needle = str(socket).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"containerd-shim" in cmdline and needle in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


def teardown(sandbox: Sandbox, state: SandboxState) -> None:
    """Undo what ``start`` did to this machine; each step harmless if there is nothing to undo."""
    if not state.host:
        return
    host_state = host.HostState(**state.host)
    host.kill_cgroup(host_state)
    _kill_shims(node.containerd_socket(sandbox.dir))
    host.remove_netns(host_state)
    host.unmount_all(sandbox.dir)
    host.remove_iptables_chains(sandbox.toolchain.path("iptables").parent)
    host.delete_bridge(host_state)
    host.remove_cgroups(host_state)
    host.restore_sysctls(host_state)
