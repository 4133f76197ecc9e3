"""Fast checks of the sandbox's pieces that need no binaries: certificates, state, ports, pids."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509

from ferrocanary.local import certs, launch, processes
from ferrocanary.local.sandbox import COMPONENTS, ComponentState, Sandbox, SandboxError, SandboxState
from ferrocanary.local.toolchain import Toolchain, read_versions, repo_root


def test_pki_has_an_admin_in_system_masters_and_a_serving_cert_for_loopback(tmp_path: Path) -> None:
    pki = certs.generate(tmp_path)
    admin = x509.load_pem_x509_certificate(pki.admin_cert.read_bytes())
    assert "O=system:masters" in admin.subject.rfc4514_string()
    serving = x509.load_pem_x509_certificate(pki.serving_cert.read_bytes())
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert "10.96.0.1" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert oct(pki.admin_key.stat().st_mode & 0o777) == "0o600"


def test_state_round_trips_through_json() -> None:
    state = SandboxState(
        name="x",
        ports={"apiserver": 1234},
        components={"etcd": ComponentState(name="etcd", argv=["/bin/etcd", "--a"], pid=7)},
    )
    again = SandboxState.from_json(state.to_json())
    assert again == state


def test_versions_are_pinned_in_one_file() -> None:
    versions = read_versions()
    assert versions.kubernetes.startswith("v1.")
    assert int(versions.kubernetes_minor) >= 31
    assert (repo_root() / "tools" / "versions.env").is_file()
    toolchain = Toolchain()
    assert toolchain.path("kubernetes", "kubectl").name == "kubectl"
    assert versions.kubernetes in str(toolchain.path("kubernetes", "kubectl"))


def test_stop_kills_by_pid_and_is_harmless_twice(tmp_path: Path) -> None:
    started = processes.start(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "s.log"
    )
    assert processes.is_running(started.pid, started.executable)
    processes.stop(started.pid, started.executable)
    assert not processes.is_running(started.pid, started.executable)
    processes.stop(started.pid, started.executable)


def test_children_lists_live_children_only() -> None:
    """The gateway waits for nginx's old workers to go; that needs a true list of a process's children."""
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert child.pid in processes.children(os.getpid())
        child.kill()
        # Killed but not yet reaped, the child is a zombie: it no longer counts as a live child.
        deadline = time.monotonic() + 5
        while child.pid in processes.children(os.getpid()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert child.pid not in processes.children(os.getpid())
    finally:
        child.kill()
        child.wait()


def test_a_recycled_pid_running_something_else_is_never_signalled() -> None:
    other = subprocess.Popen(["sleep", "30"])
    try:
        processes.stop(other.pid, "/usr/bin/not-what-we-started")
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_a_component_that_dies_at_start_is_named_with_its_log(tmp_path: Path) -> None:
    started = processes.start(
        "broken", [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], tmp_path / "broken.log"
    )
    with pytest.raises(
        processes.ComponentError, match=r"broken exited during start-up; log .*broken.log"
    ) as err:
        processes.wait_until(started, lambda: False, timeout=10)
    assert "boom" in str(err.value)


def test_bad_sandbox_names_and_missing_sandboxes_are_explained() -> None:
    with pytest.raises(SandboxError, match="invalid sandbox name"):
        Sandbox("../etc")
    with pytest.raises(SandboxError, match="is not up"):
        Sandbox("never-started-unit").env()
    assert Sandbox("never-started-unit").down() is False


def _fake_pki(root: Path) -> certs.Pki:
    names = "ca_cert ca_key serving_cert serving_key admin_cert admin_key sa_public sa_private"
    return certs.Pki(*(root / "pki" / n for n in names.split()))


def test_the_launch_plan_starts_every_component_in_order_on_loopback_and_writes_nothing(
    tmp_path: Path,
) -> None:
    ports = dict(
        zip(
            ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler", "kwok", "prometheus"),
            range(20001, 20008),
            strict=True,
        )
    )
    directory = tmp_path / "sandbox"
    inputs = launch.Inputs(Toolchain(), ports, directory, directory / "kubeconfig", _fake_pki(directory))
    steps = launch.plan(inputs)
    assert [s.name for s in steps] == list(COMPONENTS)
    assert not directory.exists(), "planning must not write: Sandbox writes the files it needs"
    for step in steps:
        assert step.timeout > 0
        assert step.health.startswith(("http://127.0.0.1:", "https://127.0.0.1:")), step
        for flag in step.argv[1:]:
            if "address" in flag or "listen" in flag:
                assert "127.0.0.1" in flag, f"{step.name} {flag}"
    apiserver = next(s for s in steps if s.name == "kube-apiserver")
    assert "--secure-port=20003" in apiserver.argv
    assert apiserver.health == "https://127.0.0.1:20003/readyz"
