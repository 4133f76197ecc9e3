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


def test_zero_event_upper_bound() -> None:
    assert counts.poisson_upper(0, 10.0, 0.05) == pytest.approx(-math.log(0.05) / 10.0, rel=1e-9)  # about 3/E
    for k in (1, 2, 7):
        upper = counts.poisson_upper(k, 4.0, 0.05)
        # the bound is the rate at which seeing k or fewer events has probability alpha
        assert stats.poisson.cdf(k, upper * 4.0) == pytest.approx(0.05, rel=1e-6)
    assert counts.poisson_upper(0, 0.0, 0.05) == math.inf
