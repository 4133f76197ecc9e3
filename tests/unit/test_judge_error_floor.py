"""The error-rate guard's absolute floor: a service with no 5xx at all must still be able to promote.

The ratio e-process learns nothing from blocks without errors, so before the floor a clean canary with
a clear p99 win could only end Inconclusive at maxDuration. Non-inferiority is now "candidate rate <=
max(promote_below x baseline rate, baseline rate + nonInferiorityFloor)", shown by the mean of the ratio
e-process and an e-process for "candidate rate below the floor" (a time-uniform upper bound)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from ferrocanary.bench import recordings, sim
from ferrocanary.judge import counts, replay
from ferrocanary.model import analysis
from ferrocanary.model.analysis import AnalysisSettings, GuardKind, GuardRail
from ferrocanary.model.decisions import Decision, Reading

FINE = np.asarray(0.002 * 1.1 ** np.arange(75), dtype=np.float64)
ALPHA = 0.05


def _replay(
    scenario: sim.Scenario, seed: int, settings: AnalysisSettings | None = None
) -> tuple[object, int | None]:
    batch = sim.simulate(scenario, 1, np.random.default_rng(seed), FINE)
    return replay.replay(recordings.from_batch(batch, 0), settings or AnalysisSettings())


@pytest.mark.parametrize("rps", [20.0, 100.0])
def test_zero_errors_in_both_arms_and_a_clear_p99_win_promotes(rps: float) -> None:
    """Zero errors in both arms, p99 ratio 0.40: promoted within maxDuration in each of 20 runs (seeds
    0-19), with the error-rate guard shown non-inferior through its floor."""
    for seed in range(20):
        judgement, at = _replay(sim.Scenario(0.40, rps, error_rate=0.0), seed)
        assert judgement.decision is Decision.PROMOTE, (seed, judgement.reason)  # type: ignore[attr-defined]
        assert at is not None
        guard = next(g for g in judgement.guards if g.name == "error-rate")  # type: ignore[attr-defined]
        assert guard.decision is Reading.PASS
        assert "error-rate" in judgement.reason  # type: ignore[attr-defined]


def test_a_clean_candidate_passes_the_floor_after_about_log_one_over_alpha_over_delta_requests() -> None:
    """No errors in n requests: log E = ln(mean over the grid of (1-q)^n/(1-delta)^n); the q = 0 term
    alone gives -n ln(1-delta) - ln 3, so the floor is shown (E >= 2/alpha, its half of the mean) by
    ln(6/alpha)/delta requests (4,788 at delta 0.001), sooner by the q = delta/4 and delta/2 terms."""
    delta = 0.001
    n = np.full(200, 50.0)  # 10,000 requests in blocks of 50
    log_e = counts.log_e_rate_below(np.zeros(200), n, delta)
    first = int(np.argmax(log_e >= math.log(2.0 / ALPHA)))
    requests = 50.0 * (first + 1)
    bound = math.log(6.0 / ALPHA) / delta
    assert 0.85 * bound <= requests <= bound


def test_the_floor_e_process_is_valid_at_the_floor() -> None:
    """At a true rate equal to the floor (the null's edge) the running maximum of E crosses 1/alpha in
    at most alpha of 2,000 runs (seed 7) of 300 blocks of 200 requests; Bernoulli counts and, with the
    dispersion tempering, per-block gamma bursts (CV 1)."""
    rng = np.random.default_rng(7)
    delta, runs, blocks, size = 0.001, 2000, 300, 200.0
    n = np.full(blocks, size)
    crossed_plain = crossed_bursty = 0
    for _ in range(runs):
        k = rng.binomial(int(size), delta, blocks).astype(np.float64)
        crossed_plain += bool(counts.log_e_rate_below(k, n, delta).max() >= math.log(1 / ALPHA))
        p = np.minimum(1.0, delta * rng.gamma(1.0, 1.0, blocks))
        kb = rng.binomial(int(size), p).astype(np.float64)
        phi = counts.rate_dispersion(kb, n, delta)
        crossed_bursty += bool(counts.log_e_rate_below(kb, n, delta, phi=phi).max() >= math.log(1 / ALPHA))
    se = 2 * math.sqrt(ALPHA * (1 - ALPHA) / runs)
    assert crossed_plain / runs <= ALPHA + se
    assert crossed_bursty / runs <= ALPHA + se


def test_the_floor_does_not_let_twice_the_baseline_error_rate_through() -> None:
    """A candidate at 0.4% (baseline 0.2%) is above the 0.1% floor: the floor's e-process falls, and
    that cell's promote rate stays <= 5% (tests/unit/test_judge_guards.py, 200 runs)."""
    n = np.full(100, 600.0)
    k = np.full(100, 2.4)  # 0.4% of 600, in expectation
    assert counts.log_e_rate_below(k, n, 0.001)[-1] < 0


def test_the_floor_is_a_validated_spec_field() -> None:
    assert AnalysisSettings().guards[0].floor == pytest.approx(0.001)
    spec = {"guards": [{"name": "e", "type": "errorRate", "nonInferiorityFloor": 0.005}]}
    assert analysis.settings_from_spec(spec).guards[0].floor == pytest.approx(0.005)
    for bad in (0, -0.1, 0.9, "x"):
        spec = {"guards": [{"name": "e", "type": "errorRate", "nonInferiorityFloor": bad}]}
        with pytest.raises(ValueError, match=r"spec\.analysis\.guards\[0\]\.nonInferiorityFloor"):
            analysis.settings_from_spec(spec)
    with pytest.raises(ValueError, match="nonInferiorityFloor"):
        GuardRail("g", GuardKind.ERROR_RATE, floor=0.0)


def test_identical_arms_pass_the_p50_guard() -> None:
    """Identical latency in both arms (ratio 1.0), judged on throughput per CPU alone (the candidate
    uses half the CPU): the p50 guard with its 0.1 margin is shown non-inferior and the canary
    promotes within maxDuration, at 20 and 100 rps, in at least 85 of 100 runs each (seeds 0-99;
    measured 91 and 91, median 68 and 59 minutes: a 10% margin on the median takes most of the run
    when nothing else about latency differs; the rest end Inconclusive, never Rollback)."""
    settings = dataclasses.replace(AnalysisSettings(), kpis=(analysis.DEFAULT_KPIS[1],))
    for rps in (20.0, 100.0):
        promoted = 0
        for seed in range(100):
            judgement, _ = _replay(sim.Scenario(1.0, rps), seed, settings)
            guard = next(g for g in judgement.guards if g.name == "p50-latency")  # type: ignore[attr-defined]
            shown = guard.decision is Reading.PASS
            promoted += shown and judgement.decision is Decision.PROMOTE  # type: ignore[attr-defined]
        assert promoted >= 85, (rps, promoted)


def test_the_reason_names_the_floor() -> None:
    judgement, _ = _replay(sim.Scenario(0.40, 100.0, error_rate=0.0), 0)
    assert "rate below the baseline's + 0.001" in judgement.reason  # type: ignore[attr-defined]


def test_large_clean_blocks_are_not_tempered() -> None:
    """The candidate's dispersion is measured around its own rate so far, not the floor's: blocks of
    3,000 requests without an error (100 rps at 50% over a minute) give phi = 1 after the prior has
    worn off (around the floor's rate the Pearson residual of 0 errors would be n x floor = 3, and the
    floor would take three times as many requests to show)."""
    n, k = np.full(30, 3000.0), np.zeros(30)
    phi = counts.rate_dispersion(k, n, 0.001)
    assert phi[0] == pytest.approx(counts.PRIOR_PHI)
    assert np.all(phi[12:] == 1.0)


def test_the_non_inferiority_grid_is_centred_on_equal_rates_and_sums_to_one() -> None:
    """The weights are fixed before any data (a function of the centre only): equal without a centre,
    largest at the grid point nearest the centre (multiplier 2 = equal rates for margin 1), and a
    proper prior (they sum to 1), so the mixture stays an e-process."""
    grid = np.array(counts.GRID)
    equal = np.exp(counts.grid_log_weights(grid, None))
    np.testing.assert_allclose(equal, 1.0 / grid.size)
    centred = np.exp(counts.grid_log_weights(grid, 2.0))
    assert centred.sum() == pytest.approx(1.0)
    assert int(np.argmax(centred)) == counts.GRID.index(2.0)
    # the hand value at the centre: 1 / sum_g exp(-(ln g - ln 2)^2 / (2 CENTRE_SD^2))
    expected = 1.0 / np.exp(-((np.log(grid) - math.log(2.0)) ** 2) / (2 * counts.CENTRE_SD**2)).sum()
    assert centred[counts.GRID.index(2.0)] == pytest.approx(expected)
