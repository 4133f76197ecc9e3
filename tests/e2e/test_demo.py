"""The main job end to end: `ferrocanary demo --quick --scenario crash` as a user runs it, on kwok.

kwok's path is pinned (``--nodes kwok``): as root the default picks the real node, whose crash and
oom scenarios tests/integration/test_real_node.py runs on that module's node. Everything is real:
the sandbox's control plane and Prometheus, the CRD and the workload's manifests, the Python and
Rust builds as processes, nginx following the HTTPRoute, the operator as its own process. The
crash scenario is the quickest (about 1.5 minutes here); the promote and regression scenarios
take 5-7 minutes each and are run by hand (README) rather than in CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ferrocanary.local.sandbox import Sandbox

pytestmark = pytest.mark.integration


def test_a_crashing_rust_build_is_rolled_back_with_a_report_and_a_replayable_recording(
    tmp_path: Path,
) -> None:
    sandbox = f"e2e-{os.getpid()}"
    record = tmp_path / "canary.json"
    demo = subprocess.run(
        [sys.executable, "-m", "ferrocanary.cli.main", "demo", "--quick", "--scenario", "crash",
         "--json", "--nodes", "kwok", "--sandbox", sandbox, "--out", str(tmp_path / "reports"),
         "--record", str(record)],
        capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr[-3000:]
    result = json.loads(demo.stdout)
    assert result["verdict"] == "RolledBack"
    assert "memory-faults" in result["reason"]
    report = Path(result["report"]).read_text()
    assert "**Verdict: RolledBack.**" in report
    for image in ("weight.png", "kpis.png", "latency.png"):
        assert (Path(result["report"]).parent / image).stat().st_size > 10_000

    # The recording alone reproduces the verdict offline.
    replay = subprocess.run(
        [sys.executable, "-m", "ferrocanary.cli.main", "analyze", "--recording", str(record), "--json"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert json.loads(replay.stdout)["decision"] == "Rollback"

    # Everything the demo started is gone: the sandbox it brought up, and every process of it.
    assert Sandbox(sandbox).load_state() is None
    leftovers = subprocess.run(
        ["pgrep", "-f", f"sandboxes/{sandbox}/"], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout.strip() == "", leftovers.stdout
