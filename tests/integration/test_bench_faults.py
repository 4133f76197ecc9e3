"""A slice of ``ferrocanary bench faults`` on the real sandbox: the operator SIGKILLed at random points
and Prometheus answering 503 for a while, both at once, with few canaries and 5 s blocks.

The benchmark runs for real here (kwok pods scaled by the replicas router, the synthetic exporter
scraped by the real Prometheus, the operator as its own process, a fault proxy in front of
Prometheus): what a user of it reads is that every canary ends as its data call for, with its two
Deployments scaled to that ending, and no canary is promoted twice, left running, or given more
traffic while its Prometheus answered nothing. The fault proxy's own modes are checked against a
plain HTTP server in tests/unit.
"""

from __future__ import annotations

import pytest

from ferrocanary.local import faults
from ferrocanary.local.sandbox import Sandbox

pytestmark = pytest.mark.integration

ZERO = ("double_promotions", "stuck", "promotions_without_data", "traffic_off_end_state")


def test_a_slice_of_the_faults_bench_ends_every_canary_as_its_data_call_for(sandbox: Sandbox) -> None:
    options = faults.Options(
        scenarios=("operator-killed", "prometheus-down"),
        canaries=4,
        interval_seconds=5,
        fault_seconds=20.0,
        limit_seconds=150.0,
        parallel=2,
        rps=5000.0,  # more evidence a block, so the guard rails are shown in fewer blocks
    )
    figures = faults.run(options, sandbox=sandbox)
    rows = {row["scenario"]: row for row in figures["scenarios"]}
    assert set(rows) == {"operator-killed", "prometheus-down"}
    for row in rows.values():
        assert row["correct"] == row["canaries"] == 4, row
        assert all(row[key] == 0 for key in ZERO), row
        assert row["endings"] == {"Promoted": 2, "RolledBack": 2}, row
        assert 0 < row["max_rss_mb"] < 500
    assert rows["operator-killed"]["kills"] >= 1  # it was really killed mid-flight
    assert rows["prometheus-down"]["prometheus_requests_faulted"] >= 1  # the 503s were really answered
