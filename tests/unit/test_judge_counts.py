"""Count e-processes (error-rate guard, sample-ratio mismatch) and the zero-event upper bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from ferrocanary.judge import counts


def test_e_process_one_block_by_hand() -> None:
    # 3 candidate and 1 baseline error at equal exposure, null ratio 1: pi0 = 1/2, pi(r) = r/(r+1).
    log_e = counts.log_e_process(np.array([3.0]), np.array([1.0]), np.array([100.0]), np.array([100.0]), 1.0)
    terms = [3 * math.log((r / (r + 1)) / 0.5) + math.log((1 / (r + 1)) / 0.5) for r in counts.GRID]
    expected = float(special.logsumexp(terms) - math.log(len(counts.GRID)))
    assert log_e[0] == pytest.approx(max(expected, 0.0), rel=1e-12)


def test_fast_logsumexp_equals_scipy() -> None:
    values = np.random.default_rng(0).normal(0, 50, size=(12, 30))
    np.testing.assert_allclose(counts.logsumexp_rows(values), special.logsumexp(values, axis=0), rtol=1e-12)


def test_type_one_error_holds_under_continuous_monitoring_with_changing_exposure() -> None:
    """3,000 null runs of 120 blocks, traffic stepping 5 -> 50%: the running maximum of E crosses
    1/alpha (alpha = 0.05) in at most alpha of them (s.e. 0.4 points); a rate ratio of 2 is caught
    in nearly every run, so the test has teeth."""
    rng = np.random.default_rng(4)
    share = np.repeat([0.05, 0.1, 0.25, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], 10)
    requests_c, requests_b = 2000 * share, 2000 * (1 - share)

    def crossed(ratio: float) -> float:
        hits = 0
        for _ in range(3000):
            ec = rng.poisson(0.01 * ratio * requests_c)
            eb = rng.poisson(0.01 * requests_b)
            hits += counts.log_e_process(ec.astype(float), eb.astype(float), requests_c, requests_b)[
                -1
            ] >= math.log(20)
        return hits / 3000

    assert crossed(1.0) <= 0.05
    assert crossed(2.0) >= 0.95


def test_two_sided_version_detects_a_short_arm() -> None:
    weights = np.full(30, 10.0)
    fair = counts.log_e_process(
        np.full(30, 100.0), np.full(30, 900.0), weights, 100 - weights, two_sided=True
    )
    starved = counts.log_e_process(
        np.full(30, 50.0), np.full(30, 950.0), weights, 100 - weights, two_sided=True
    )
    assert fair[-1] < math.log(100) < starved[-1]


def test_split_deviation_holds_its_error_at_the_edge_of_the_tolerance_band() -> None:
    """2,000 runs of 60 blocks (1,000 requests a block, weight 10%) whose candidate gets exactly 1.1x
    or 1/1.1x its configured share per unit weight, the edges of a 10% band: the running maximum of E
    crosses 1/alpha = 20 in at most alpha of them (s.e. 0.5 points). 1.5x off is caught in nearly all."""
    rng = np.random.default_rng(11)
    weight = np.full(60, 10.0)

    def crossed(factor: float, tolerance: float) -> float:
        odds = factor * 10.0 / 90.0
        p_candidate = odds / (1.0 + odds)
        hits = 0
        for _ in range(2000):
            k_c = rng.binomial(1000, p_candidate, size=60).astype(float)
            log_e = counts.log_e_split_deviation(k_c, 1000.0 - k_c, weight, 100.0 - weight, tolerance)
            hits += log_e[-1] >= math.log(20)
        return hits / 2000

    assert crossed(1.1, 0.1) <= 0.05
    assert crossed(1 / 1.1, 0.1) <= 0.05
    assert crossed(1.1, 0.0) >= 0.2  # the exact check flags the same skew (about a third of runs)
    assert crossed(1.5, 0.1) >= 0.95
    assert crossed(1 / 1.5, 0.1) >= 0.95


def test_zero_event_upper_bound() -> None:
    assert counts.poisson_upper(0, 10.0, 0.05) == pytest.approx(-math.log(0.05) / 10.0, rel=1e-9)  # about 3/E
    for k in (1, 2, 7):
        upper = counts.poisson_upper(k, 4.0, 0.05)
        # the bound is the rate at which seeing k or fewer events has probability alpha
        assert stats.poisson.cdf(k, upper * 4.0) == pytest.approx(0.05, rel=1e-6)
    assert counts.poisson_upper(0, 0.0, 0.05) == math.inf
