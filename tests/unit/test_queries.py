"""Every PromQL template is valid PromQL (checked by the real promtool) and selects what it says."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from ferrocanary.local.toolchain import Toolchain
from ferrocanary.metrics import queries

SEL = 'namespace="shop",track="candidate"'
PODS = 'namespace="shop",pod=~"scorer-rust-.*"'
ALL = {
    "requests_counter": queries.requests_counter(SEL),
    "errors_counter": queries.errors_counter(SEL),
    "latency_bucket_counter": queries.latency_bucket_counter(SEL),
    "cpu_counter": queries.cpu_counter(SEL),
    "panics_counter": queries.panics_counter(SEL),
    "requests": queries.requests(SEL, "60s"),
    "errors": queries.errors(SEL, "60s"),
    "latency_buckets": queries.latency_buckets(SEL, "60s"),
    "cpu_seconds": queries.cpu_seconds(SEL, "60s"),
    "memory_bytes": queries.memory_bytes(SEL, "60s"),
    "pods": queries.pods(SEL, "60s"),
    "panics": queries.panics(SEL, "60s"),
    "container_faults": queries.container_faults(PODS, "60s"),
    "latency_quantile": queries.latency_quantile(SEL, 0.99, "5m"),
    "request_rate": queries.request_rate(SEL, "5m"),
    "error_ratio": queries.error_ratio(SEL, "5m"),
    "requests_per_cpu_second": queries.requests_per_cpu_second(SEL, "5m"),
    "weight": queries.canary_series(queries.WEIGHT, 'namespace="shop"'),
    "phase": queries.current_phase('namespace="shop"'),
    "decisions": queries.decision_rate('namespace="shop"', "5m"),
    "reconcile_p99": queries.reconcile_p99("5m"),
    "no_selector": queries.requests("", "1m"),
}


def _promtool() -> Path:
    path = Toolchain().path("prometheus", "promtool")
    if not path.exists():
        pytest.skip("promtool not built yet (make toolchain)")
    return path


def test_every_template_is_valid_promql(tmp_path: Path) -> None:
    rules = {
        "groups": [
            {
                "name": "ferrocanary",
                "rules": [{"record": f"ferrocanary:{name}", "expr": expr} for name, expr in ALL.items()],
            }
        ]
    }
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    proc = subprocess.run(
        [str(_promtool()), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(ALL)} rules found" in proc.stdout


def test_a_broken_template_would_be_caught(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    broken = queries.requests(SEL, "60s").replace("[60s]", "[60s")
    path.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [{"record": "x:y", "expr": broken}]}]}))
    proc = subprocess.run(
        [str(_promtool()), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode != 0


def test_selectors_and_ranges_are_spliced_in_where_they_belong() -> None:
    assert queries.errors(SEL, "5s") == (
        'sum(increase(http_requests_total{namespace="shop",track="candidate",code=~"5.."}[5s]))'
    )
    assert queries.latency_buckets(SEL, "5s").startswith(
        "sum by (le) (increase(http_request_duration_seconds_bucket{"
    )
    assert queries.requests("", "1m") == "sum(increase(http_requests_total{}[1m]))"
    assert queries.range_of(60.0) == "60s"
    faults = queries.container_faults(PODS, "1m")
    for needed in (
        'reason="OOMKilled"',
        "== bool 139",
        "== bool 134",
        "kube_pod_container_status_restarts_total",
    ):
        assert needed in faults


def test_default_selectors_follow_the_metrics_contract() -> None:
    sel = queries.default_selectors("shop", "scorer-python", "scorer-rust")
    assert sel["baseline"] == 'namespace="shop",track="baseline",pod=~"scorer-python-[a-z0-9]+-[a-z0-9]+"'
    assert sel["candidate"] == 'namespace="shop",track="candidate",pod=~"scorer-rust-[a-z0-9]+-[a-z0-9]+"'
    assert sel["candidatePods"] == 'namespace="shop",pod=~"scorer-rust-[a-z0-9]+-[a-z0-9]+"'


def test_a_deployment_reads_its_own_pods_only() -> None:
    """Two canaries in one namespace, or a Deployment whose name prefixes another's, never mix pods:
    checked with the regex semantics PromQL uses (RE2, anchored at both ends)."""
    pattern = re.compile(queries.deployment_pods("scorer"))
    assert pattern.fullmatch("scorer-7c9d4f8b6-x2k4q")
    assert not pattern.fullmatch("scorer-rust-7c9d4f8b6-x2k4q")
    assert not pattern.fullmatch("scorer-python-7c9d4f8b6-x2k4q")
    assert not pattern.fullmatch("other-7c9d4f8b6-x2k4q")
    dotted = queries.deployment_pods("api.v2")
    assert dotted == "api\\\\.v2-[a-z0-9]+-[a-z0-9]+"  # \\. in the PromQL string: a literal dot
