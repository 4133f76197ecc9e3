"""What a real node changes on this machine, recorded so that ``local down`` undoes exactly that.

Owns the host side of a real node: its bridge (a name and a /24 derived from the sandbox, so two
sandboxes never share one), its cgroup root in every v1 hierarchy (``/ferrocanary-<sandbox>``, under
which the kubelet puts ``kubepods``), the kernel settings the kubelet changes (their values before, to
restore), and the teardown: every process left in the node's cgroups, the pods' network namespaces
on its subnet, the mounts under the sandbox's folder, kube-proxy's and the kubelet's iptables chains,
the bridge. Every step of the teardown is harmless when there is nothing to undo, so ``down`` after a
crash, or twice, is safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# Set by the kubelet at start unless they already have these values (its "kernel defaults").
KUBELET_SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
)
IPTABLES_TABLES = ("filter", "nat", "mangle")
# Chains the kubelet and kube-proxy create; one real node per machine owns them (see ``Lock``).
KUBE_CHAIN_PREFIX = "KUBE-"


class HostError(RuntimeError):
    """A change to this machine failed; the message names the command and its output."""


@dataclass
class HostState:
    """What ``up`` changed, saved in the sandbox's state so ``down`` can undo it after a crash."""

    bridge: str
    subnet: str
    cgroup: str
    sysctls: dict[str, str] = field(default_factory=dict)

    @property
    def gateway(self) -> str:
        """The bridge's own address: the node's IP, where the kubelet listens."""
        return str(next(ipaddress.ip_network(self.subnet).hosts()))


def run(argv: Sequence[str], check: bool = True, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False, env=env, timeout=60)
    if check and proc.returncode != 0:
        raise HostError(f"`{' '.join(argv)}` failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _used_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    found = []
    for line in run(["ip", "-4", "-o", "addr", "show"]).splitlines():
        parts = line.split()
        if "inet" in parts:
            found.append(ipaddress.ip_interface(parts[parts.index("inet") + 1]).network)
    return found


# Second octets for a node's /24 (10.N.0.0/24): below kwok's fake pod range, 10.244.0.0/16.
SUBNET_OCTETS = range(200, 244)


def plan(sandbox: str) -> HostState:
    """The bridge name and a free /24 for ``sandbox`` (10.200.0.0/24 .. 10.243.0.0/24)."""
    digest = hashlib.sha256(sandbox.encode()).hexdigest()
    used = _used_networks()
    start = int(digest[:4], 16)
    for offset in range(len(SUBNET_OCTETS)):
        octet = SUBNET_OCTETS[(start + offset) % len(SUBNET_OCTETS)]
        subnet = ipaddress.ip_network(f"10.{octet}.0.0/24")
        if not any(subnet.overlaps(u) for u in used):
            return HostState(bridge=f"fc{digest[:8]}", subnet=str(subnet), cgroup=f"ferrocanary-{sandbox}")
    raise HostError("no free /24 in 10.200.0.0-10.243.0.0 for the node's bridge")


def hierarchies() -> list[Path]:
    """The mounted cgroup v1 hierarchies (cpu, memory, ..., name=systemd); not the v2 'unified'."""
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, mountpoint, kind = line.split()[:3]
        if kind == "cgroup" and mountpoint.startswith(str(CGROUP_ROOT)):
            found.append(Path(mountpoint))
    return found


def create(state: HostState) -> None:
    """The bridge with the node's IP, and the cgroup root; record the kubelet's sysctls."""
    state.sysctls = {key: read_sysctl(key) for key in KUBELET_SYSCTLS}
    if not Path(f"/sys/class/net/{state.bridge}").exists():
        run(["ip", "link", "add", "name", state.bridge, "type", "bridge"])
    prefix = ipaddress.ip_network(state.subnet).prefixlen
    run(["ip", "addr", "replace", f"{state.gateway}/{prefix}", "dev", state.bridge])
    run(["ip", "link", "set", state.bridge, "up"])
    for hierarchy in hierarchies():
        directory = hierarchy / state.cgroup
        directory.mkdir(exist_ok=True)
        if (hierarchy / "cpuset.cpus").exists():
            # A new cpuset is empty: no task may join it until it has CPUs and memory nodes.
            for knob in ("cpuset.cpus", "cpuset.mems"):
                (directory / knob).write_text((hierarchy / knob).read_text())


def read_sysctl(key: str) -> str:
    return Path("/proc/sys", *key.split(".")).read_text().strip()


def _write_sysctl(key: str, value: str) -> None:
    with contextlib.suppress(OSError):
        Path("/proc/sys", *key.split(".")).write_text(value)


def cgroup_pids(state: HostState) -> set[int]:
    pids: set[int] = set()
    for hierarchy in hierarchies():
        for procs in (hierarchy / state.cgroup).rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in procs.read_text().split())
    return pids


def kill_cgroup(state: HostState) -> None:
    """SIGKILL whatever still runs in the node's cgroups (containers whose shim is gone)."""
    for _ in range(20):
        pids = cgroup_pids(state)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def remove_cgroups(state: HostState) -> None:
    for hierarchy in hierarchies():
        top = hierarchy / state.cgroup
        if not top.is_dir():
            continue
        # Deepest first: a cgroup with children cannot be removed.
        for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                directory.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below ``directory``, deepest first (the order to unmount them)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == str(directory) or point.startswith(f"{directory}/"):
            found.append(point)
    return sorted(found, key=lambda p: -p.count("/"))


def unmount_all(directory: Path) -> None:
    for _ in range(3):
        points = mounts_under(directory)
        if not points:
            return
        for point in points:
            run(["umount", "-l", point], check=False)


def _netns_on(subnet: str) -> list[Path]:
    """The pods' network namespaces (under /run/netns, where containerd puts them) on ``subnet``."""
    network = ipaddress.ip_network(subnet)
    found = []
    for path in sorted(Path("/run/netns").glob("cni-*")):
        out = run(["nsenter", f"--net={path}", "ip", "-4", "-o", "addr", "show"], check=False)
        for line in out.splitlines():
            parts = line.split()
            if "inet" in parts and ipaddress.ip_interface(parts[parts.index("inet") + 1]).ip in network:
                found.append(path)
                break
    return found


def remove_netns(state: HostState) -> None:
    for path in _netns_on(state.subnet):
        run(["umount", "-l", str(path)], check=False)
        with contextlib.suppress(OSError):
            path.unlink()


def iptables_chains(tools: Path) -> list[str]:
    """Every KUBE- chain left in this machine's IPv4 and IPv6 tables ("iptables/nat/KUBE-SERVICES")."""
    chains = []
    for family in ("iptables", "ip6tables"):
        for table in IPTABLES_TABLES:
            out = run([str(tools / f"{family}-save"), "-t", table], check=False)
            chains += [
                f"{family}/{table}/{line[1:].split()[0]}"
                for line in out.splitlines()
                if line.startswith(f":{KUBE_CHAIN_PREFIX}")
            ]
    return chains


def remove_iptables_chains(tools: Path) -> None:
    """Rewrite each table without any rule or chain that names KUBE-; everything else stays.

    ``tools`` holds the iptables commands. The kubelet writes its canary chains in both families,
    kube-proxy its rules in both when the machine has IPv6.
    """
    for family in ("iptables", "ip6tables"):
        for table in IPTABLES_TABLES:
            saved = run([str(tools / f"{family}-save"), "-t", table], check=False)
            if KUBE_CHAIN_PREFIX not in saved:
                continue
            kept = "\n".join(line for line in saved.splitlines() if KUBE_CHAIN_PREFIX not in line) + "\n"
            restore = [str(tools / f"{family}-restore"), "-T", table]
            proc = subprocess.run(restore, input=kept, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise HostError(f"{family}-restore -T {table} failed: {proc.stderr.strip()}")


def delete_bridge(state: HostState) -> None:
    if Path(f"/sys/class/net/{state.bridge}").exists():
        # Veths of pods whose namespace is gone went with it; any left are enslaved to the bridge.
        for port in Path(f"/sys/class/net/{state.bridge}/brif").glob("*"):
            run(["ip", "link", "delete", port.name], check=False)
        run(["ip", "link", "delete", state.bridge], check=False)


def restore_sysctls(state: HostState) -> None:
    for key, value in state.sysctls.items():
        if read_sysctl(key) != value:
            _write_sysctl(key, value)
