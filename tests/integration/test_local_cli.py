"""`ferrocanary local` as a user drives it: build (idempotent, says what is cached), up (idempotent),
env, status, down (harmless twice)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ferrocanary.local import processes
from ferrocanary.local.sandbox import Sandbox

pytestmark = pytest.mark.integration


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ferrocanary.cli.main", "local", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def test_up_env_status_down_from_the_command_line() -> None:
    name = f"cli-{os.getpid()}"
    try:
        first = _cli("up", "--name", name)
        assert first.returncode == 0, first.stderr
        assert "is up" in first.stderr
        again = _cli("up", "--name", name)
        assert again.returncode == 0
        assert "already up; nothing to do" in again.stderr

        exports = _cli("env", "--name", name).stdout
        env = dict(os.environ)
        for line in exports.splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value.strip("'")
        assert set(env) >= {"KUBECONFIG", "PROMETHEUS_URL"}
        kubectl = subprocess.run(
            ["kubectl", "get", "nodes", "-o", "name"], env=env, capture_output=True, text=True, check=True
        )
        assert kubectl.stdout.strip() == "node/kwok-node-0"
        assert processes.http_ok(env["PROMETHEUS_URL"] + "/-/ready")

        status = json.loads(_cli("status", "--name", name, "--json").stdout)
        assert status["up"] is True
        assert set(status["components"].values()) == {"healthy"}
        state = Sandbox(name).load_state()
        assert state is not None
    finally:
        down = _cli("down", "--name", name)
    assert down.returncode == 0
    for component in state.components.values():
        assert not processes.is_running(component.pid, component.argv[0]), f"{component.name} left running"
    assert "was not up" in _cli("down", "--name", name).stderr
    assert _cli("status", "--name", name).returncode == 1


def test_build_on_a_built_machine_lists_every_component_as_cached() -> None:
    """Captured output is not a terminal: plain lines on stderr, the JSON alone on stdout."""
    built = _cli("build", "--json")
    assert built.returncode == 0, built.stderr
    report = json.loads(built.stdout)
    assert report["built"] == []
    assert {"kubernetes", "etcd", "kwok", "prometheus"} <= set(report["components"])
    for name, component in report["components"].items():
        assert component["cached"] is True
        assert component["seconds"] == 0.0
        assert f"cached   {name} " in built.stderr
    again = _cli("build")  # without --json, a summary line ends the list
    assert again.returncode == 0, again.stderr
    assert f"all {len(report['components'])} components cached" in again.stderr.splitlines()[-1]
