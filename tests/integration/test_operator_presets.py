"""A canary on each request preset reaches its verdict through the operator and the real Prometheus.

The exporter (support/exporter.py) plays the two builds' traffic as Istio's sidecars or the
ingress-nginx controller export it, with cAdvisor's container CPU and memory; the RustCanary names
the preset and nothing else about the series. A clear Rust win is promoted on fine buckets; on
Istio's default buckets the same win is refused as Invalid, the verdict naming the annotation that
fixes it. Timings as in test_operator_canary.py (3 s blocks, 12 s dwell), one canary at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kopf.testing import KopfRunner

from ferrocanary.kube import rest
from ferrocanary.local.sandbox import Sandbox
from tests.support import arms
from tests.support.canary import Canary, running

pytestmark = pytest.mark.integration


@pytest.fixture
def operator(
    crd: None, sandbox: Sandbox, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KopfRunner]:
    monkeypatch.setenv("KUBECONFIG", str(sandbox.kubeconfig))
    monkeypatch.delenv("FERROCANARY_METRICS_PORT", raising=False)  # no /metrics server of its own here
    args = ["run", "--standalone", "--namespace", namespace, "-m", "ferrocanary.handlers"]
    with KopfRunner(args, timeout=60) as runner:
        yield runner


def _canary(sandbox: Sandbox, api: rest.Rest, namespace: str, preset: str, *, coarse: bool = False) -> Canary:
    return Canary(
        sandbox,
        api,
        namespace,
        f"{preset.replace('-', '')}win",
        "gatewayAPI",  # the arms' Services are in the spec, as ingress-nginx's preset needs
        arms.RUST_WIN,
        dialect=preset,
        coarse=coarse,
        spec_overrides={"analysis": {"metrics": {"preset": preset}}},
    )


@pytest.mark.usefixtures("operator")
@pytest.mark.parametrize("preset", ["istio", "ingress-nginx"])
def test_a_clear_win_on_the_presets_series_is_promoted(
    preset: str, sandbox: Sandbox, api: rest.Rest, namespace: str, tmp_path: Path
) -> None:
    canary = _canary(sandbox, api, namespace, preset)
    with running(canary, tmp_path):
        canary.apply()
        status = canary.wait_terminal(300)
        assert status["phase"] == "Promoted", status.get("verdictReason")
        assert status["verdict"] == "Promote"
        kpis = {k["name"]: k for k in status["kpis"]}
        # p99 from the system's histogram (Istio's in ms, read as seconds): RUST_WIN is about 0.35x
        assert kpis["p99-latency"]["decision"] == "Pass"
        assert kpis["p99-latency"]["upper"] < 0.6
        # throughput per CPU second from cAdvisor's container CPU: about 3.3x
        assert kpis["throughput-per-cpu"]["lower"] > 1.5


@pytest.mark.usefixtures("operator")
def test_istios_default_buckets_are_refused_naming_the_annotation(
    sandbox: Sandbox, api: rest.Rest, namespace: str, tmp_path: Path
) -> None:
    canary = _canary(sandbox, api, namespace, "istio", coarse=True)
    with running(canary, tmp_path):
        canary.apply()
        status = canary.wait_terminal(300)
        assert status["verdict"] == "Invalid", status.get("verdictReason")
        assert status["verdictReason"].startswith("Latency buckets too coarse")
        assert "sidecar.istio.io/statsHistogramBuckets" in status["verdictReason"]
        assert status["phase"] != "Promoted"


DB_CALLS = {
    "name": "db-calls-per-request",
    "type": "ratio",
    "numerator": 'db_queries_total{namespace="{{namespace}}",pod=~"{{pods}}"}',
    "denominator": 'http_requests_total{namespace="{{namespace}}",pod=~"{{pods}}"}',
    "target": 0.8,
}


@pytest.mark.usefixtures("operator")
@pytest.mark.parametrize(
    "case", [(1.0, "Promoted", "Pass"), (3.0, "RolledBack", "Miss")], ids=["fewer-calls", "more-calls"]
)
def test_a_custom_kpi_decides_from_its_own_counters(
    case: tuple[float, str, str], sandbox: Sandbox, api: rest.Rest, namespace: str, tmp_path: Path
) -> None:
    candidate_calls, phase, reading = case
    canary = Canary(
        sandbox,
        api,
        namespace,
        f"dbcalls{int(candidate_calls)}",
        "replicas",
        arms.RUST_WIN,  # every built-in KPI passes: the custom one decides
        db_calls_per_request={"baseline": 2.0, "candidate": candidate_calls},
        spec_overrides={"analysis": {"metrics": {"kpis": [DB_CALLS]}}},
    )
    with running(canary, tmp_path):
        canary.apply()
        status = canary.wait_terminal(300)
        assert status["phase"] == phase, status.get("verdictReason")
        kpi = next(k for k in status["kpis"] if k["name"] == "db-calls-per-request")
        assert kpi["decision"] == reading
        assert kpi["lower"] < candidate_calls / 2.0 < kpi["upper"]
        if phase == "RolledBack":
            assert "db-calls-per-request" in status["verdictReason"]
