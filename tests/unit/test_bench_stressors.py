"""The judge under production stressors (issue 13), on a reduced grid with a fixed seed: slow drifts
common to both arms must not leak into the ratios, and serially correlated blocks must not make the
boundary promote. 200 runs a cell at 20 rps (Monte-Carlo s.e. 1.5 points at 5%); the bound is the
issue's 5% + 2 s.e.

Measured before issue 13 (seed 11): common-drift 19%, cpu-drift 13.5%, trend 9.5% (throughput),
arm-autocorrelation 9.5%. With this seed now: 0%, 0%, 0.5%, 2%."""

from __future__ import annotations

import math
from typing import Any

import pytest

from ferrocanary.bench import judge

RUNS = 200
BOUND = 0.05 + 2 * math.sqrt(0.05 * 0.95 / RUNS)

# Simulations of many canaries: seconds each, so they run with the integration tests.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cells() -> dict[tuple[str, str], dict[str, Any]]:
    grid = [
        judge.Cell(0.60, 20.0, "exp1.1", RUNS, "common-drift", "p99-latency"),
        judge.Cell(0.40, 20.0, "exp1.1", RUNS, "cpu-drift", "throughput-per-cpu"),
        judge.Cell(0.40, 20.0, "exp1.1", RUNS, "trend", "throughput-per-cpu"),
        judge.Cell(0.60, 20.0, "exp1.1", RUNS, "arm-autocorrelation", "p99-latency"),
    ]
    rows = judge.run_grid(grid, seed=13, workers=1)
    return {(r["stressor"], r["kpi"]): r for r in rows if r["method"] == "ferrocanary"}


@pytest.mark.parametrize(
    ("stressor", "kpi"),
    [
        ("common-drift", "p99-latency"),
        ("cpu-drift", "throughput-per-cpu"),
        ("trend", "throughput-per-cpu"),
        ("arm-autocorrelation", "p99-latency"),
    ],
)
def test_a_kpi_at_its_target_is_not_promoted_under_the_stressor(
    cells: dict[tuple[str, str], dict[str, Any]], stressor: str, kpi: str
) -> None:
    row = cells[(stressor, kpi)]
    assert row["runs"] == RUNS
    assert row["promote"] <= BOUND
