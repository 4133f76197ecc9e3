"""The judge benchmark: a reduced grid with a fixed seed must reach the issue's figures, the peers must
show their known failures on the same data, and the CLI must print the JSON rows."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from ferrocanary.bench import judge, peers, sim
from ferrocanary.cli import main

RUNS = 200  # per cell: Monte-Carlo s.e. 1.5 points at a 5% rate, 0.7 points at 1%

# Simulations of many canaries: seconds each, so they run with the integration tests.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def grid() -> dict[tuple[str, float, str], dict[str, Any]]:
    """exp1.1 at 20 rps for the four truths the issue names, plus default buckets (seed 7, one process).

    The full bench (1,000 runs a cell) measured 1.4% false promotions at the boundary, 0% at 0.70,
    99.9% promotions at 0.40 and 100% rollbacks at 1.20 for this cell (this seed: 1.5%, 0%, 99.5%,
    100%); the thresholds below sit at least 3 s.e. away from those rates, so this test fails when
    the judge degrades, not by chance (the seed is fixed anyway, so it is deterministic)."""
    cells = [judge.Cell(t, 20.0, "exp1.1", RUNS) for t in (0.40, 0.60, 0.70, 1.20)]
    cells += [judge.Cell(t, 20.0, "default", 40) for t in (0.40, 0.60)]
    rows = judge.run_grid(cells, seed=7, workers=1)
    return {(r["method"], r["true_ratio"], r["buckets"]): r for r in rows}


def test_boundary_truth_is_promoted_at_most_alpha(grid: dict[tuple[str, float, str], dict[str, Any]]) -> None:
    row = grid[("ferrocanary", 0.60, "exp1.1")]
    assert row["runs"] == RUNS
    assert row["promote"] <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / RUNS)


def test_thirty_percent_better_is_not_enough(grid: dict[tuple[str, float, str], dict[str, Any]]) -> None:
    assert grid[("ferrocanary", 0.70, "exp1.1")]["promote"] <= 0.01


def test_clear_improvement_promotes_sooner_than_kayenta(
    grid: dict[tuple[str, float, str], dict[str, Any]],
) -> None:
    row = grid[("ferrocanary", 0.40, "exp1.1")]
    assert row["promote"] >= 0.95
    assert row["rollback"] <= 0.01
    assert row["median_minutes"] < grid[("kayenta-fixed", 0.40, "exp1.1")]["median_minutes"] == 60


def test_regression_rolls_back(grid: dict[tuple[str, float, str], dict[str, Any]]) -> None:
    assert grid[("ferrocanary", 1.20, "exp1.1")]["rollback"] >= 0.95


def test_default_buckets_never_promote(grid: dict[tuple[str, float, str], dict[str, Any]]) -> None:
    for truth in (0.40, 0.60):
        row = grid[("ferrocanary", truth, "default")]
        assert row["promote"] == 0.0
        assert row["invalid"] == 1.0


def test_peers_show_their_known_failures(grid: dict[tuple[str, float, str], dict[str, Any]]) -> None:
    """Judged fairly, the peers still fail where their method does (measured at 20 rps, 200 runs, seed
    7): Flagger-style per-minute checks through the whole ramp roll back a clear winner in most runs
    (62.5%: a p99 from a minute of the 5% arm is mostly noise, and 5 failed checks end it);
    naive-z on the judge's own estimate and variance, with a fixed 1.645 from minBlocks on,
    promotes 28% of boundary candidates where the anytime boundary promotes at most 5%; and
    without the bucket check it is fooled by default buckets (95%)."""
    assert grid[("flagger", 0.40, "exp1.1")]["rollback"] > 0.4
    assert grid[("naive-z", 0.60, "exp1.1")]["promote"] > 0.15
    assert grid[("naive-z", 0.60, "exp1.1")]["promote"] > 3 * grid[("ferrocanary", 0.60, "exp1.1")]["promote"]
    assert grid[("naive-z", 0.60, "default")]["promote"] > 0.5
    assert grid[("ferrocanary", 0.60, "default")]["promote"] == 0.0


def test_flagger_counts_failed_checks() -> None:
    p99 = np.ones((3, 12, 2))
    p99[0, :, 1] = 0.5  # always under 0.6 x baseline -> promote when the ramp is done
    p99[1, :, 1] = 0.9  # always over -> roll back at the 5th failed check
    p99[2, :, 1] = 0.5
    p99[2, [1, 3, 5, 7], 1] = np.nan  # 4 minutes without data fail their checks, not enough to roll back
    codes, minutes = peers.flagger(p99, 0.6, checks=12)  # the whole ramp: 12 checks here
    assert codes.tolist() == [peers.PROMOTE, peers.ROLLBACK, peers.PROMOTE]
    assert minutes.tolist() == [12, 5, 12]
    assert peers.ramp_minutes(sim.Scenario(0.6, 20.0)) == 40  # 4 steps of 10 minutes


def test_kayenta_fixed_judges_once_at_sixty_minutes() -> None:
    rng = np.random.default_rng(0)
    p99 = np.exp(rng.normal(0, 0.1, size=(2, 120, 2)))
    p99[0, :, 1] *= 0.3  # far better than 0.6 x
    p99[1, :, 1] *= 0.6  # exactly on the margin
    codes, minutes = peers.kayenta(p99, 0.6, looks=(60,))
    assert codes.tolist() == [peers.PROMOTE, peers.ROLLBACK]
    assert minutes.tolist() == [60, 60]


def test_seeds_do_not_depend_on_the_number_of_workers() -> None:
    cells = [judge.Cell(0.5, 20.0, "exp1.1", 6)]
    assert judge.run_grid(cells, seed=3, workers=1) == judge.run_grid(cells, seed=3, workers=2)


def test_simulated_quantile_ratio_is_the_truth() -> None:
    """The simulator's candidate is the truth times the baseline: pooled over many runs the p99 of the
    candidate's buckets over the baseline's is within 3% of 0.6."""
    batch = sim.simulate(
        sim.Scenario(0.6, 100.0, common_sigma=0.0, arm_sigma=0.0), 4, np.random.default_rng(1)
    )
    pooled = batch.counts.sum(axis=(0, 1))  # (2, K)
    p99 = peers.quantiles.prometheus_quantile(pooled, batch.bounds, 0.99)
    assert p99[1] / p99[0] == pytest.approx(0.6, rel=0.03)


def test_cli_prints_rows(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(judge, "TRUTHS", (0.4,))
    monkeypatch.setattr(judge, "RPS", (20.0,))
    monkeypatch.setattr(judge, "STRESS_RPS", (20.0,))
    code = main.main(["bench", "judge", "--runs", "3", "--json", "--workers", "1", "--seed", "1"])
    out = capsys.readouterr().out
    assert code == 0
    payload = json.loads(out)
    stress = judge.stress_cells(3)
    assert len(payload["rows"]) == (len(judge.BUCKETS) + len(stress)) * len(judge.METHODS)
    row = payload["rows"][0]
    assert {"method", "true_ratio", "rps", "buckets", "runs", "promote", "rollback", "inconclusive",
            "median_minutes", "p90_minutes", "stressor", "kpi", "stressor_params"} <= set(row)  # fmt: skip
    drift = next(r for r in payload["rows"] if r["stressor"] == "common-drift")
    assert drift["stressor_params"] == {"common_phi": 0.9}
    assert 0 < payload["evaluate_ms"] < 100
