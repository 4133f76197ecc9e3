"""Fast checks of the sandbox's pieces that need no binaries: certificates, state, ports, pids,
the launch plan, and how a toolchain build reports its progress (with fake recipes)."""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from cryptography import x509
from rich.console import Console

from ferrocanary.cli import local_build
from ferrocanary.cli.main import main
from ferrocanary.local import certs, launch, processes
from ferrocanary.local.sandbox import COMPONENTS, ComponentState, Sandbox, SandboxError, SandboxState
from ferrocanary.local.toolchain import (
    BuildRecord,
    Component,
    Toolchain,
    ToolchainError,
    read_versions,
    repo_root,
)


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
            # (--kubelet-preferred-address-types names an address kind, not a listener)
            if ("address" in flag or "listen" in flag) and "address-types" not in flag:
                assert "127.0.0.1" in flag, f"{step.name} {flag}"
    apiserver = next(s for s in steps if s.name == "kube-apiserver")
    assert "--secure-port=20003" in apiserver.argv
    assert apiserver.health == "https://127.0.0.1:20003/readyz"


# ------------------------------------------------------------------ toolchain build progress
# Fake recipes stand in for the Go builds: they write their files (or fail) at once, so the
# reporting is checked end to end through the real Toolchain.ensure/build in a temporary cache.


def _writes(*files: str, pause: float = 0.0) -> Callable[[Path, Path], None]:
    def build(target: Path, log: Path) -> None:
        with log.open("a") as out:  # what `go build -v` leaves in the log, as _run appends it
            out.write(f"$ go build -v {target}\nexample.com/a\nexample.com/b/c\n")
            out.write("go: downloading example.com/d v1.0.0\n")
        time.sleep(pause)
        for f in files:
            (target / f).write_text("built")

    return build


def _fails(target: Path, log: Path) -> None:
    (target / "half").write_text("not finished")
    raise ToolchainError(f"broken: exploded; see {log}")


def _toolchain(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *components: Component) -> Toolchain:
    monkeypatch.setenv("FERROCANARY_CACHE", str(tmp_path))
    toolchain = Toolchain()
    toolchain.components = components
    return toolchain


def _component(name: str, build: Callable[[Path, Path], None], hint: str = "fake recipe") -> Component:
    return Component(name, "v1.0", (f"{name}-bin",), hint, build)


class RecordingReporter:
    """Remembers every event ``Toolchain.ensure`` reports, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    def plan(self, components: Sequence[Component], missing: Sequence[Component]) -> None:
        self.events.append(("plan", *(c.name for c in missing)))

    def cached(self, component: Component) -> None:
        self.events.append(("cached", component.name))

    def started(self, component: Component, log: Path) -> None:
        self.events.append(("started", component.name, log.name))

    def finished(self, record: BuildRecord) -> None:
        self.events.append(("finished", record.name, f"{record.seconds:.0f}"))

    def failed(self, component: Component, seconds: float, error: BaseException) -> None:
        self.events.append(("failed", component.name, str(error).split(";")[0]))


def _prebuilt(component: Component) -> None:
    component.directory.mkdir(parents=True)
    for f in component.files:
        (component.directory / f).write_text("cached")


def test_ensure_reports_each_component_cached_or_built_with_its_seconds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first, second, third = (_component(n, _writes(f"{n}-bin")) for n in ("first", "second", "third"))
    toolchain = _toolchain(monkeypatch, tmp_path, first, second, third)
    _prebuilt(second)
    reporter = RecordingReporter()
    ticks = itertools.count(step=5)  # each clock reading is 5 s after the last

    records = toolchain.ensure(reporter, clock=lambda: float(next(ticks)))

    assert reporter.events == [
        ("plan", "first", "third"),
        ("started", "first", "first-v1.0.log"),
        ("finished", "first", "5"),
        ("cached", "second"),
        ("started", "third", "third-v1.0.log"),
        ("finished", "third", "5"),
    ]
    assert [(r.name, r.cached, r.seconds) for r in records] == [
        ("first", False, 5.0),
        ("second", True, 0.0),
        ("third", False, 5.0),
    ]
    assert toolchain.missing() == []


def test_a_failed_build_is_reported_then_raised_and_leaves_nothing_half_built(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken, after = _component("broken", _fails), _component("after", _writes("after-bin"))
    toolchain = _toolchain(monkeypatch, tmp_path, broken, after)
    reporter = RecordingReporter()
    with pytest.raises(ToolchainError, match="broken: exploded"):
        toolchain.ensure(reporter)
    assert reporter.events[-1] == ("failed", "broken", "broken: exploded")
    assert ("started", "after", "after-v1.0.log") not in reporter.events
    assert not broken.directory.exists()
    assert not broken.directory.with_name(broken.directory.name + ".tmp").exists()


def test_plain_lines_for_logs_name_each_component_with_its_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    slow = _component("slow-one", _writes("slow-one-bin", pause=0.3), hint="a long compile")
    cached = _component("cached", _writes("cached-bin"))
    toolchain = _toolchain(monkeypatch, tmp_path, slow, cached)
    _prebuilt(cached)
    out = io.StringIO()
    # A heartbeat every 0.1 s stands in for the minute between "still running" lines.
    with local_build.PlainReport(out, heartbeat=0.1) as reporter:
        records = toolchain.ensure(reporter)
    lines = out.getvalue().splitlines()
    assert lines[0] == f"toolchain: 2 components in {tmp_path / 'bin'}: 1 cached, 1 to build"
    assert lines[1].startswith("building slow-one v1.0  a long compile; log ")
    done = "2 packages compiled, 1 module downloaded"
    assert any(
        line.startswith("building slow-one v1.0  still running after 0.") and line.endswith(f"s: {done}")
        for line in lines
    )
    assert lines[-2].startswith("built    slow-one v1.0  in 0.")
    assert lines[-2].endswith(f"s ({done})")
    assert lines[-1] == "cached   cached   v1.0"
    assert local_build.summary(records, tmp_path / "bin").startswith(
        f"toolchain ready in {tmp_path / 'bin'}: built slow-one in 0."
    )
    assert local_build.summary(records[1:], tmp_path / "bin").endswith("all 1 components cached")
    two = [BuildRecord(n, "v1", False, 30.0, tmp_path) for n in ("x", "y")]
    assert local_build.summary(two, tmp_path).endswith(
        "built x in 30.0s, y in 30.0s (1m 00s in all); 0 cached"
    )


def test_the_live_view_ends_with_one_row_per_component(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    built = _component("built-one", _writes("built-one-bin"))
    cached = _component("cached-one", _writes("cached-one-bin"))
    toolchain = _toolchain(monkeypatch, tmp_path, built, cached)
    _prebuilt(cached)
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100, color_system=None)
    with local_build.reporter_for(console) as reporter:
        assert isinstance(reporter, local_build.LiveReport)
        toolchain.ensure(reporter)
    final = screen.getvalue().rsplit("\x1b[2K", 1)[-1]  # the last frame rich drew
    rows = [line.split() for line in final.splitlines() if line.startswith("✓")]
    assert len(rows) == 2
    assert rows[0][:3] == ["✓", "built-one", "v1.0"]
    assert rows[0][3].endswith("s")
    assert " ".join(rows[0][4:]) == "built (2 packages compiled, 1 module downloaded)"
    assert rows[1] == ["✓", "cached-one", "v1.0", "cached"]


def test_a_console_that_is_not_a_terminal_gets_plain_lines() -> None:
    console = Console(file=io.StringIO(), force_terminal=False)
    with local_build.reporter_for(console) as reporter:
        assert isinstance(reporter, local_build.PlainReport)


def test_the_log_watch_counts_only_what_this_build_wrote_whole_lines_at_a_time(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("old/package/from/a/failed/run\n")
    watch = local_build.LogWatch(log)
    assert watch.poll() == ""
    with log.open("a") as out:
        out.write("$ go build -v -o /x .\nk8s.io/api/core/v1\nk8s.io/kubernetes/cmd/kube-api")
        out.flush()
        assert watch.poll() == "1 package compiled"  # the half-written line waits for its end
        out.write('server\ngo: downloading k8s.io/api v0.33.13\n{\n  "Path": "x"\n}\n')
    assert watch.poll() == "2 packages compiled, 1 module downloaded"


def test_durations_read_in_minutes_past_one() -> None:
    assert local_build.duration(4.25) == "4.2s"
    assert local_build.duration(605.9) == "10m 05s"


def test_build_json_lists_every_component_with_cached_and_seconds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    built, cached = _component("built-one", _writes("built-one-bin")), _component("cached-one", _fails)
    toolchain = _toolchain(monkeypatch, tmp_path, built, cached)
    _prebuilt(cached)
    monkeypatch.setattr("ferrocanary.cli.local.Toolchain", lambda: toolchain)

    assert main(["local", "build", "--json"]) == 0

    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["built"] == ["built-one"]
    assert report["components"]["cached-one"] == {
        "version": "v1.0",
        "directory": str(cached.directory),
        "cached": True,
        "seconds": 0.0,
    }
    assert report["components"]["built-one"]["cached"] is False
    assert "built    built-one" in captured.err  # progress goes to stderr, never into the JSON
