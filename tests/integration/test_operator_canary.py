"""The operator on the real control plane with a real Prometheus: canaries a platform team would run.

Each test creates the two builds (Deployments run by kwok), their routing object, a live exporter
per canary that Prometheus scrapes every second (support/exporter.py: traffic follows the real
HTTPRoute weights or replica ratio), and a RustCanary; the operator runs through
``kopf.testing.KopfRunner`` (or as ``ferrocanary run`` in its own process where it must be killed).
Intervals are 3 s, warm-up 6 s, minimum dwell 12 s, so each canary ends within about two minutes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from ferrocanary.kube import canaries, rest
from ferrocanary.local.sandbox import Sandbox
from tests.support import arms
from tests.support.canary import Canary, assert_resumed_to_the_same_promotion, running
from tests.support.waiting import unchanged_until, wait_for

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# One /metrics server per test process (prometheus_client cannot re-bind): the same port for every run.
METRICS_PORT = _free_port()


@pytest.fixture
def operator_env(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(sandbox.kubeconfig))
    monkeypatch.setenv("FERROCANARY_METRICS_PORT", str(METRICS_PORT))
    monkeypatch.setenv("FERROCANARY_METRICS_ADDRESS", "127.0.0.1")


@pytest.fixture
def operator(crd: None, operator_env: None, namespace: str) -> Iterator[KopfRunner]:
    args = ["run", "--standalone", "--namespace", namespace, "-m", "ferrocanary.handlers"]
    with KopfRunner(args, timeout=60) as runner:
        yield runner


def prometheus_query(sandbox: Sandbox, query: str) -> list[dict[str, Any]]:
    url = f"{sandbox.prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    with urllib.request.urlopen(url, timeout=10) as reply:
        result: list[dict[str, Any]] = json.load(reply)["data"]["result"]
    return result


def test_a_clear_win_ends_promoted_with_the_route_at_100_percent_rust(
    sandbox: Sandbox, api: rest.Rest, namespace: str, operator: KopfRunner, tmp_path: Path
) -> None:
    canary = Canary(sandbox, api, namespace, "scorer", "gatewayAPI", arms.RUST_WIN)
    with running(canary, tmp_path):
        sandbox.add_scrape_target(
            f"{namespace}-operator", [f"127.0.0.1:{METRICS_PORT}"], {"component": "operator"}
        )
        try:
            started = time.monotonic()
            canary.apply()
            canary.wait(lambda s: s.get("phase") == "Progressing", 30, "Progressing")
            assert canary.route_weights() == {"scorer-python": 90, "scorer-rust": 10}
            status = canary.wait_terminal(300)
            took = time.monotonic() - started
            assert status["phase"] == "Promoted", status.get("verdictReason")
            assert status["verdict"] == "Promote"
            assert canary.route_weights() == {"scorer-python": 0, "scorer-rust": 100}
            p99 = next(k for k in status["kpis"] if k["name"] == "p99-latency")
            assert p99["decision"] == "Pass"
            assert p99["upper"] <= 0.60
            assert p99["lower"] <= 0.35 <= p99["upper"] * 1.05  # the model's true ratio, within the interval
            assert status["p99Ratio"]
            reasons = canary.reasons()
            assert reasons[0] == "Started"
            assert "Promoted" in reasons
            printed = sandbox.kubectl("-n", namespace, "get", "rustcanaries")
            assert "Promoted" in printed
            assert "Promote" in printed
            # An SRE asking who owns the status is told ferrocanary, not the client library.
            shown = json.loads(
                sandbox.kubectl(
                    "-n", namespace, "get", "rustcanary", "scorer", "-o", "json", "--show-managed-fields"
                )
            )
            owners = {(m["manager"], m.get("subresource", "")) for m in shown["metadata"]["managedFields"]}
            assert ("ferrocanary", "status") in owners, owners
            # The operator's own metrics, scraped by the real Prometheus.
            weight = wait_for(
                lambda: prometheus_query(
                    sandbox, f'ferrocanary_canary_weight_percent{{namespace="{namespace}"}}'
                ),
                30,
                "the operator's weight metric at 100 in Prometheus",
                until=lambda w: bool(w) and float(w[0]["value"][1]) == 100.0,
                interval=1,
            )
            assert weight
            assert float(weight[0]["value"][1]) == 100.0
            phase = prometheus_query(sandbox, f'ferrocanary_canary_phase{{namespace="{namespace}"}} == 1')
            assert [p["metric"]["phase"] for p in phase] == ["Promoted"]
            target = prometheus_query(
                sandbox, f'ferrocanary_kpi_target_ratio{{namespace="{namespace}",kpi="p99-latency"}}'
            )
            assert float(target[0]["value"][1]) == 0.6
            print(f"clear win: Promoted after {took:.0f}s")
        finally:
            sandbox.remove_scrape_target(f"{namespace}-operator")


def test_a_p99_miss_ends_rolled_back_naming_the_kpi(
    sandbox: Sandbox, api: rest.Rest, namespace: str, operator: KopfRunner, tmp_path: Path
) -> None:
    canary = Canary(sandbox, api, namespace, "slowrust", "replicas", arms.RUST_P99_MISS)
    with running(canary, tmp_path):
        canary.apply()
        canary.wait(lambda s: s.get("phase") == "Progressing", 30, "Progressing")
        assert canary.replicas() == (9, 1)
        status = canary.wait_terminal(300)
        assert status["phase"] == "RolledBack", status.get("verdictReason")
        assert status["verdict"] == "Rollback"
        assert "p99-latency" in status["verdictReason"]
        p99 = next(k for k in status["kpis"] if k["name"] == "p99-latency")
        assert p99["decision"] == "Miss"
        assert p99["lower"] > 0.60
        assert canary.replicas() == (10, 0)
        assert "RolledBack" in canary.reasons()
        assert "RollingBack" not in canary.reasons()  # traffic was back in the same look: one Event


def test_a_candidate_panic_rolls_back_at_once(
    sandbox: Sandbox, api: rest.Rest, namespace: str, operator: KopfRunner, tmp_path: Path
) -> None:
    canary = Canary(
        sandbox,
        api,
        namespace,
        "panicky",
        "gatewayAPI",
        arms.RUST_WIN,
        spec_overrides={"analysis": {"minBlocks": 40}},  # no promotion before the fault
    )
    with running(canary, tmp_path):
        canary.apply()
        canary.wait(lambda s: s.get("decision") == "Continue" and s.get("blocksUsed", 0) >= 2, 60, "analysis")
        canary.panic()
        panicked = time.monotonic()
        status = canary.wait_terminal(60)
        took = time.monotonic() - panicked
        assert status["phase"] == "RolledBack", status.get("verdictReason")
        assert "fault" in status["verdictReason"].lower()
        assert took < 25, (
            f"rollback took {took:.0f}s after the panic"
        )  # interval 3s + lag 2s + scrape + ticks
        assert canary.route_weights() == {"panicky-python": 100}  # the candidate is detached again


def test_prometheus_down_mid_run_holds_and_resumes_when_it_is_back(
    sandbox: Sandbox, api: rest.Rest, namespace: str, operator: KopfRunner, tmp_path: Path
) -> None:
    canary = Canary(
        sandbox,
        api,
        namespace,
        "held",
        "gatewayAPI",
        arms.RUST_WIN,
        spec_overrides={"analysis": {"minBlocks": 12}},
    )
    with running(canary, tmp_path):
        canary.apply()
        canary.wait(lambda s: s.get("decision") == "Continue" and s.get("blocksUsed", 0) >= 1, 60, "analysis")
        sandbox.stop_component("prometheus")
        try:
            held = canary.wait(lambda s: s.get("decision") == "Hold", 30, "Hold")
            assert "unreachable" in held["decisionReason"]
            metrics = {c["type"]: c for c in held["conditions"]}["MetricsAvailable"]
            assert (metrics["status"], metrics["reason"]) == ("False", "PrometheusUnavailable")
            step, weights = held["stepIndex"], canary.route_weights()
            # An analysis after minDwell ran out, when a healthy canary would have advanced.
            now = canary.wait(canary.analysed_past_dwell, 60, "an analysis past minDwell")
            assert (now["phase"], now["stepIndex"], now["decision"]) == ("Progressing", step, "Hold")
            assert canary.route_weights() == weights
        finally:
            sandbox.start_component("prometheus")
        status = canary.wait_terminal(300)
        assert status["phase"] == "Promoted", status.get("verdictReason")
        reasons = canary.reasons()
        assert "PrometheusUnavailable" in reasons
        assert "MetricsFresh" in reasons


def test_manual_promote_pause_resume_and_abort(
    sandbox: Sandbox, api: rest.Rest, namespace: str, operator: KopfRunner, tmp_path: Path
) -> None:
    gated = Canary(
        sandbox,
        api,
        namespace,
        "gated",
        "gatewayAPI",
        arms.RUST_WIN,
        spec_overrides={"promotion": {"mode": "manual"}},
    )
    steered = Canary(
        sandbox,
        api,
        namespace,
        "steered",
        "gatewayAPI",
        arms.RUST_WIN,
        spec_overrides={"analysis": {"minBlocks": 40}},
    )
    with running(gated, tmp_path), running(steered, tmp_path):
        gated.apply()
        steered.apply()
        steered.wait(lambda s: s.get("phase") == "Progressing", 30, "Progressing")
        steered.annotate("pause")
        paused = steered.wait(lambda s: s.get("phase") == "Paused", 15, "Paused")
        assert paused["lastAction"]["action"] == "pause"
        # The handled annotation is removed right after the status write (a separate request).
        wait_for(
            lambda: steered.obj["metadata"].get("annotations") or {},
            10,
            "the pause annotation cleared",
            until=lambda annotations: "ferrocanary.io/action" not in annotations,
        )
        # An analysis past minDwell: a paused canary stays at its step.
        steered.wait(steered.analysed_past_dwell, 60, "an analysis past minDwell")
        assert (steered.status["phase"], steered.status["stepIndex"]) == ("Paused", 0)
        assert steered.route_weights() == {"steered-python": 90, "steered-rust": 10}
        steered.annotate("resume")
        steered.wait(lambda s: s.get("phase") == "Progressing", 15, "Progressing again")
        steered.wait(lambda s: s.get("stepIndex", 0) >= 1, 60, "the next step after resuming")
        steered.annotate("abort")
        aborted = steered.wait_terminal(30)
        assert (aborted["phase"], aborted["verdict"]) == ("RolledBack", "Rollback")
        assert "aborted by hand" in aborted["verdictReason"]
        assert steered.route_weights() == {"steered-python": 100}

        waiting = gated.wait(lambda s: s.get("phase") == "WaitingPromotion", 300, "WaitingPromotion")
        weights = gated.route_weights()
        gated.wait_analyses(2, since=waiting, timeout=30)  # the operator looks twice more and waits
        assert gated.status["phase"] == "WaitingPromotion"
        assert gated.route_weights() == weights  # nothing moves without a person
        assert waiting["decision"] == "Promote"
        gated.annotate("promote")
        promoted = gated.wait_terminal(30)
        assert promoted["phase"] == "Promoted"
        assert "by hand" in promoted["verdictReason"]
        assert gated.route_weights() == {"gated-python": 0, "gated-rust": 100}
        assert "WaitingPromotion" in gated.reasons()


def test_a_second_canary_on_the_same_deployments_waits_for_the_first_then_starts(
    sandbox: Sandbox, api: rest.Rest, namespace: str, operator: KopfRunner, tmp_path: Path
) -> None:
    """The start rule from the operator's watch (kopf's index) rather than a LIST of the namespace:
    a canary created while another one runs on its Deployments waits, naming it, and starts when
    that one has finished."""
    first = Canary(sandbox, api, namespace, "scorer", "replicas", arms.RUST_WIN)
    # The second names the same Deployments and reads the first's series: only the name differs.
    second = Canary(sandbox, api, namespace, "scorer-again", "replicas", arms.RUST_WIN)
    with running(first, tmp_path):
        lists_before = _canary_lists()
        first.apply()
        first.wait(lambda s: s.get("phase") == "Progressing", 30, "Progressing")
        body = {**first.obj, "metadata": {"name": second.name, "namespace": namespace}}
        api.post(canaries.path(namespace), {k: body[k] for k in ("apiVersion", "kind", "metadata", "spec")})
        try:

            def claimed(status: dict[str, Any]) -> bool:
                return any(c.get("reason") == "ClaimedByAnother" for c in status.get("conditions", []))

            waiting = second.wait(claimed, 30, "ClaimedByAnother")
            message = next(c["message"] for c in waiting["conditions"] if c["reason"] == "ClaimedByAnother")
            assert f"is used by RustCanary {namespace}/scorer (Progressing)" in message, message
            assert waiting.get("phase", "Pending") == "Pending"
            ended = first.wait_terminal(300)
            assert ended["phase"] == "Promoted", ended.get("verdictReason")
            second.wait(lambda s: s.get("phase") == "Progressing", 30, "the second started")
            assert "Started" in second.reasons()
            second.annotate("abort")
            assert second.wait_terminal(30)["phase"] == "RolledBack"
            # Neither start LISTed the namespace (the operator runs in this process: same counter).
            assert _canary_lists() == lists_before
        finally:
            second.delete()


def _canary_lists() -> int:
    """LISTs of RustCanaries sent from this process so far (rest.REQUESTS counts every request)."""
    counts = rest.REQUESTS.snapshot()
    return sum(n for (verb, resource, _), n in counts.items() if (verb, resource) == ("list", "rustcanaries"))


@pytest.mark.usefixtures("crd", "operator_env")
def test_an_operator_killed_mid_step_resumes_to_the_same_verdict(
    sandbox: Sandbox, api: rest.Rest, namespace: str, tmp_path: Path
) -> None:
    canary = Canary(
        sandbox,
        api,
        namespace,
        "phoenix",
        "gatewayAPI",
        arms.RUST_WIN,
        spec_overrides={"analysis": {"minBlocks": 12}},
    )
    with running(canary, tmp_path):
        with (tmp_path / "operator.log").open("w") as log:  # the child keeps its own copy
            first = subprocess.Popen(
                [str(Path(sys.executable).parent / "ferrocanary"), "run", "--namespace", namespace],
                env={**os.environ, "FERROCANARY_METRICS_PORT": "0"},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            canary.apply()
            mid = canary.wait(lambda s: s.get("stepIndex", -1) >= 1, 120, "the second step")
        finally:
            os.kill(first.pid, signal.SIGKILL)  # no shutdown, no last status write
            first.wait(timeout=30)
        assert mid["phase"] == "Progressing"
        # Until a running operator would have analysed twice more, the status must not move.
        due = canary.next_analyses_due(canary.status, 2)
        frozen = unchanged_until(due, lambda: canary.status, "status with no operator running")
        assert frozen["phase"] == "Progressing"  # nobody runs the canary while the operator is down
        with KopfRunner(
            ["run", "--standalone", "--namespace", namespace, "-m", "ferrocanary.handlers"], timeout=60
        ):
            status = canary.wait_terminal(300)
            assert_resumed_to_the_same_promotion(canary, status, mid)
            canary.delete()
