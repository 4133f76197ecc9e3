"""``kubectl ferrocanary`` against the sandbox's real API server, found by the real kubectl on PATH.

A RustCanary with a hand-set status (written through the status subresource, as the operator writes
it) for ``get``; the ``ferrocanary.io/action`` annotation round trip for the actions, first with no
operator (the annotation is set and stays), then with the real operator running, which acts on it,
records ``status.lastAction`` and clears it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner

from ferrocanary.kube import canaries, rest
from ferrocanary.local.sandbox import Sandbox
from tests.support import arms
from tests.support.canary import Canary, drop_finalizers
from tests.support.cli import kubectl_ferrocanary

pytestmark = pytest.mark.integration


def _stamp(minutes_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


STATUS: dict[str, Any] = {
    "phase": "Progressing",
    "stepIndex": 1,
    "weight": 10,
    "decision": "Continue",
    "decisionReason": "throughput-per-cpu: still open",
    "blocksUsed": 31,
    "p99Ratio": "0.52 [0.47, 0.58]",
    "kpis": [
        {
            "name": "p99-latency",
            "estimate": 0.523,
            "lower": 0.471,
            "upper": 0.581,
            "target": 0.6,
            "direction": "lower",
            "decision": "Pass",
            "eta50Seconds": None,
            "eta80Seconds": None,
        },
        {
            "name": "throughput-per-cpu",
            "estimate": 1.71,
            "lower": 1.32,
            "upper": None,
            "target": 1.5,
            "direction": "higher",
            "decision": "Open",
            "eta50Seconds": 250.0,
            "eta80Seconds": 610.0,
        },
        {
            "name": "memory-faults",
            "estimate": 0.0,
            "lower": None,
            "upper": 0.0021,
            "target": 0.0,
            "direction": "lower",
            "decision": "NoData",
            "detail": "3 of 20 blocks",
        },
    ],
    "guards": [
        {
            "name": "error-rate",
            "estimate": 0.98,
            "lower": 0.7,
            "upper": 1.21,
            "target": 1.0,
            "direction": "lower",
            "decision": "Open",
        },
    ],
    "cost": {"baselineMonthly": 1234.5, "candidateMonthly": 812.25, "savingFraction": 0.342},
}


@pytest.fixture
def canary(sandbox: Sandbox, api: rest.Rest, namespace: str, crd: None) -> str:
    """A RustCanary whose status is set by hand through the status subresource."""
    body = {
        "apiVersion": canaries.API_VERSION,
        "kind": canaries.KIND,
        "metadata": {"name": "scorer", "namespace": namespace},
        "spec": {
            "baseline": {"deployment": "scorer-python"},
            "candidate": {"deployment": "scorer-rust"},
            "trafficRouting": {"replicas": {"total": 10}},
            "steps": {"weights": [5, 10, 25, 50]},
            "analysis": {"prometheus": {"address": sandbox.prometheus_url}},
        },
    }
    created = api.post(canaries.path(namespace), body)
    status = {**STATUS, "startedAt": _stamp(42), "lastTickAt": _stamp(0.5)}
    canaries.patch_status(api, namespace, "scorer", status, created["metadata"]["resourceVersion"])
    return "scorer"


def test_get_shows_every_kpis_estimate_interval_target_decision_and_eta(
    sandbox: Sandbox, namespace: str, canary: str
) -> None:
    shown = kubectl_ferrocanary(sandbox, "get", canary, "-n", namespace)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "Phase:       Progressing" in lines
    assert "Weight:      10% on the Rust build  (steps: 5 [10] 25 50)" in lines
    assert "Decision:    Continue: throughput-per-cpu: still open" in lines
    assert any(ln.startswith("Started:") and "(42m ago)" in ln and "on 31 blocks" in ln for ln in lines)
    assert "Cost:        Python $1,234.50/month, Rust $812.25/month (saving 34.2%)" in lines
    rows = {ln.split()[0]: ln.split() for ln in lines if ln.split()}
    assert rows["KPI"] == ["KPI", "ESTIMATE", "INTERVAL", "TARGET", "DECISION", "ETA", "50%", "ETA", "80%"]
    assert rows["p99-latency"] == ["p99-latency", "0.52", "[0.47,", "0.58]", "<=", "0.60", "Pass", "-", "-"]
    throughput = ["throughput-per-cpu", "1.71", "[1.32,", "inf]", ">=", "1.50", "Open", "4m10s", "10m"]
    assert rows["throughput-per-cpu"] == throughput
    assert rows["memory-faults"][1:4] == ["0.00", "[-inf,", "0.0021]"]
    assert rows["error-rate"][6] == "Open"
    wide = kubectl_ferrocanary(sandbox, "get", canary, "-n", namespace, "-o", "wide").stdout
    assert "DETAIL" in wide
    assert "3 of 20 blocks" in wide


def test_get_lists_canaries_like_kubectl_get(sandbox: Sandbox, namespace: str, canary: str) -> None:
    listed = kubectl_ferrocanary(sandbox, "get", "-n", namespace)
    header, row = listed.stdout.splitlines()
    assert header.split() == ["NAME", "PHASE", "WEIGHT", "VERDICT", "P99", "RATIO", "AGE"]
    assert row.split()[:6] == ["scorer", "Progressing", "10%", "-", "0.52", "[0.47,"]
    everywhere = kubectl_ferrocanary(sandbox, "get", "-A", "-o", "wide").stdout
    mine = [ln.split() for ln in everywhere.splitlines() if ln.startswith(namespace)]
    assert mine
    assert mine[0][:2] == [namespace, "scorer"]
    assert "2/4" in mine[0]
    assert kubectl_ferrocanary(sandbox, "get", "-n", namespace, "-o", "name").stdout.split() == [
        "rustcanaries.ferrocanary.io/scorer"
    ]


def test_get_prints_the_object_as_json_and_yaml(
    sandbox: Sandbox, api: rest.Rest, namespace: str, canary: str
) -> None:
    stored = api.get(canaries.path(namespace, canary))
    as_json = json.loads(kubectl_ferrocanary(sandbox, "get", canary, "-n", namespace, "-o", "json").stdout)
    as_yaml = yaml.safe_load(
        kubectl_ferrocanary(sandbox, "get", canary, "-n", namespace, "-o", "yaml").stdout
    )
    assert as_json == as_yaml == stored
    listing = json.loads(kubectl_ferrocanary(sandbox, "get", "-n", namespace, "-o", "json").stdout)
    assert [o["metadata"]["name"] for o in listing["items"]] == [canary]


# Rich markup (a stray closing tag made every view crash), a colour escape, a terminal-title
# sequence, a bidi override and a newline, as an echoed Prometheus answer could put them in status.
HOSTILE_REASON = "[/x] [bold]no[/bold] \x1b[31mred\x1b]0;pwned\x07 \u202eevil\nline two"
HOSTILE_SHOWN = "[/x] [bold]no[/bold] \\x1b[31mred\\x1b]0;pwned\\x07 \\u202eevil\\nline two"


def test_a_hostile_decision_reason_prints_literally_in_every_view(
    sandbox: Sandbox, api: rest.Rest, namespace: str, canary: str
) -> None:
    obj = api.get(canaries.path(namespace, canary))
    status = {"decisionReason": HOSTILE_REASON, "verdictReason": HOSTILE_REASON}
    canaries.patch_status(api, namespace, canary, status, obj["metadata"]["resourceVersion"])
    assert api.get(canaries.path(namespace, canary))["status"]["decisionReason"] == HOSTILE_REASON
    views = {
        "get": kubectl_ferrocanary(sandbox, "get", canary, "-n", namespace),
        "get -o wide": kubectl_ferrocanary(sandbox, "get", canary, "-n", namespace, "-o", "wide"),
        "get -A -o wide": kubectl_ferrocanary(sandbox, "get", "-A", "-o", "wide"),
        "get -A": kubectl_ferrocanary(sandbox, "get", "-A"),
    }
    for view, shown in views.items():
        assert shown.returncode == 0, f"{view}: {shown.stderr}"
        assert "Traceback" not in shown.stderr, view
        assert not {"\x1b", "\x07", "\u202e"} & set(shown.stdout), view
    for view in ("get", "get -o wide"):
        lines = views[view].stdout.splitlines()
        assert f"Decision:    Continue: {HOSTILE_SHOWN}" in lines, view
        assert f"Verdict:     -: {HOSTILE_SHOWN}" in lines, view
    mine = [ln for ln in views["get -A -o wide"].stdout.splitlines() if ln.startswith(namespace)]
    assert len(mine) == 1
    assert mine[0].endswith(HOSTILE_SHOWN)
    assert any(ln.split()[:2] == [namespace, canary] for ln in views["get -A"].stdout.splitlines())


def test_the_namespace_defaults_to_the_contexts(
    sandbox: Sandbox, namespace: str, canary: str, tmp_path: Path
) -> None:
    config = yaml.safe_load(sandbox.kubeconfig.read_text())
    for context in config["contexts"]:
        context["context"]["namespace"] = namespace
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    listed = kubectl_ferrocanary(sandbox, "get", kubeconfig=str(path))
    assert listed.stdout.splitlines()[1].split()[0] == "scorer"


def test_an_action_sets_the_annotation_and_waits_only_when_asked(
    sandbox: Sandbox, api: rest.Rest, namespace: str, canary: str
) -> None:
    promoted = kubectl_ferrocanary(sandbox, "promote", canary, "-n", namespace)
    assert promoted.returncode == 0, promoted.stderr
    assert (
        promoted.stdout.strip()
        == f"rustcanaries.ferrocanary.io/{canary} promote requested (ferrocanary.io/action=promote)"
    )
    annotations = api.get(canaries.path(namespace, canary))["metadata"]["annotations"]
    assert annotations[canaries.ACTION_ANNOTATION] == "promote"
    # A later action replaces an unhandled one; with no operator running, --wait says so.
    aborted = kubectl_ferrocanary(sandbox, "abort", canary, "-n", namespace, "--wait", "2")
    assert aborted.returncode == 1
    assert "the operator has not acted on abort within 2s: is it running?" in aborted.stderr
    annotations = api.get(canaries.path(namespace, canary))["metadata"]["annotations"]
    assert annotations[canaries.ACTION_ANNOTATION] == "abort"
    shown = kubectl_ferrocanary(sandbox, "get", canary, "-n", namespace).stdout
    assert "Pending:     abort (waiting for the operator)" in shown


def test_a_finished_canary_is_not_acted_on(
    sandbox: Sandbox, api: rest.Rest, namespace: str, canary: str
) -> None:
    obj = api.get(canaries.path(namespace, canary))
    canaries.patch_status(
        api,
        namespace,
        canary,
        {"phase": "Promoted", "verdict": "Promote"},
        obj["metadata"]["resourceVersion"],
    )
    refused = kubectl_ferrocanary(sandbox, "abort", canary, "-n", namespace)
    assert refused.returncode == 1
    assert (
        refused.stderr.strip()
        == f'error: rustcanary "{canary}" is Promoted: it has ended, there is nothing to abort'
    )
    assert canaries.ACTION_ANNOTATION not in (
        api.get(canaries.path(namespace, canary))["metadata"].get("annotations") or {}
    )


def test_errors_say_what_is_wrong(sandbox: Sandbox, namespace: str, crd: None, tmp_path: Path) -> None:
    missing = kubectl_ferrocanary(sandbox, "get", "nope", "-n", namespace)
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        f'error: rustcanary "nope" not found in namespace "{namespace}" '
        f"(`kubectl ferrocanary get -n {namespace}` lists them)"
    )
    empty = kubectl_ferrocanary(sandbox, "get", "-n", namespace)
    assert empty.returncode == 0
    assert empty.stderr.strip() == f"No resources found in {namespace} namespace."
    config = yaml.safe_load(sandbox.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(yaml.safe_dump(config))
    unreachable = kubectl_ferrocanary(sandbox, "get", kubeconfig=str(dead))
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("error: cannot reach the cluster at https://127.0.0.1:1:")
    assert "Traceback" not in unreachable.stderr


@pytest.fixture
def operator(
    sandbox: Sandbox, namespace: str, crd: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KopfRunner]:
    monkeypatch.setenv("KUBECONFIG", str(sandbox.kubeconfig))
    monkeypatch.delenv("FERROCANARY_METRICS_PORT", raising=False)
    with KopfRunner(
        ["run", "--standalone", "--namespace", namespace, "-m", "ferrocanary.handlers"], timeout=60
    ) as runner:
        yield runner


def test_pause_resume_and_abort_round_trip_through_the_real_operator(
    sandbox: Sandbox, api: rest.Rest, namespace: str, operator: KopfRunner
) -> None:
    """The operator acts on each action, records it in status.lastAction and clears the annotation."""
    canary = Canary(sandbox, api, namespace, "scorer", "gatewayAPI", arms.RUST_WIN)
    canary.create_workload()  # no exporter: the analysis holds for want of data, actions still apply
    canary.apply()
    try:
        canary.wait(lambda s: s.get("phase") == "Progressing", 60, "Progressing")
        for action, phase in (("pause", "Paused"), ("resume", "Progressing")):
            done = kubectl_ferrocanary(sandbox, action, "scorer", "-n", namespace, "--wait", "60")
            assert done.returncode == 0, done.stderr
            assert f"scorer {action}: " in done.stdout
            assert done.stdout.rstrip().endswith(f"phase {phase}")
            obj = canary.obj
            assert canaries.ACTION_ANNOTATION not in (obj["metadata"].get("annotations") or {})
            assert obj["status"]["lastAction"]["action"] == action
        aborted = kubectl_ferrocanary(sandbox, "abort", "scorer", "-n", namespace, "--wait", "60")
        assert aborted.returncode == 0, aborted.stderr
        status = canary.wait(lambda s: s.get("phase") == "RolledBack", 60, "RolledBack")
        assert canary.route_weights() == {"scorer-python": 100}
        shown = kubectl_ferrocanary(sandbox, "get", "scorer", "-n", namespace).stdout
        assert "Phase:       RolledBack" in shown
        assert f"Last action: abort at {status['lastAction']['at']}" in shown
    finally:
        try:
            canary.delete()
        except AssertionError:
            drop_finalizers(api, namespace, "scorer")
