"""Count e-processes under over-dispersion (issue 13): the predictable dispersion estimate by hand,
near 1 on Poisson counts, and what it does (and does not) do for the error guard's type I error
under per-arm error bursts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ferrocanary.judge import counts


def test_dispersion_is_predictable_and_starts_at_the_prior() -> None:
    """Block 0 sees no data: phi = PRIOR_PHI. Block 1 sees block 0 only: 6 candidate and 2 baseline
    events at equal exposure, fitted ratio 3, pi = 3/4, Pearson residual^2 = (6 - 6)^2 / ... = 0, so
    phi = (0 + PRIOR_PHI PRIOR_BLOCKS) / (1 + PRIOR_BLOCKS). Changing block 2 does not change phi_2."""
    k_c, k_b = np.array([6.0, 1.0, 9.0]), np.array([2.0, 5.0, 0.0])
    e = np.ones(3)
    phi = counts.dispersion(k_c, k_b, e, e)
    prior = counts.PRIOR_PHI * counts.PRIOR_BLOCKS
    assert phi[0] == pytest.approx(counts.PRIOR_PHI)
    assert phi[1] == pytest.approx(prior / (1 + counts.PRIOR_BLOCKS))
    # block 1 against the ratio fitted on blocks 0..1 (7 vs 7: ratio 1, pi 1/2): residual^2 = (1 - 3)^2 / 1.5
    expected = max(1.0, (0 + (1 - 3) ** 2 / 1.5 + prior) / (2 + counts.PRIOR_BLOCKS))
    assert phi[2] == pytest.approx(expected)
    changed = counts.dispersion(k_c, np.array([2.0, 5.0, 40.0]), e, e)
    assert changed[2] == phi[2]


def test_dispersion_is_near_one_for_poisson_counts() -> None:
    rng = np.random.default_rng(0)
    exposure_c, exposure_b = np.full(120, 500.0), np.full(120, 1500.0)
    phi = counts.dispersion(
        rng.poisson(0.01 * exposure_c).astype(float),
        rng.poisson(0.01 * exposure_b).astype(float),
        exposure_c,
        exposure_b,
    )
    assert phi[-1] == pytest.approx(1.0, abs=0.35)


def _null_crossings(runs: int, temper: bool, rng: np.random.Generator) -> float:
    """Equal error rates with a per-arm, per-block gamma factor (CV 1); traffic stepping 5 -> 50%
    at 100 rps per arm (as the bench, without its warm-up blocks); the guard's alpha, 0.005."""
    share = np.repeat([0.05, 0.1, 0.25, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], 10)
    requests_c, requests_b = 12_000 * share, 12_000 * (1 - share)
    hits = 0
    for _ in range(runs):
        ec = rng.poisson(0.002 * requests_c * rng.gamma(1.0, 1.0, 120)).astype(float)
        eb = rng.poisson(0.002 * requests_b * rng.gamma(1.0, 1.0, 120)).astype(float)
        phi = counts.dispersion(ec, eb, requests_c, requests_b) if temper else None
        hits += counts.log_e_process(ec, eb, requests_c, requests_b, phi=phi)[-1] >= math.log(200)
    return hits / runs


def test_bursts_are_tempered_tenfold_but_not_to_the_nominal_level() -> None:
    """1,000 null runs each way. The plain e-process crosses 1/alpha in about half of the healthy runs
    (measured 51%); tempered by the predictable dispersion in about 5% (measured 5.4%). That is a
    tenfold cut but still ten times the nominal 0.5%: with per-arm bursts and unequal traffic the
    split given a block's total is biased toward 50/50, which a dispersion factor cannot remove
    (counts module docstring). The bounds pin both facts so a change to either shows up here."""
    rng = np.random.default_rng(1)
    plain = _null_crossings(1000, False, rng)
    tempered = _null_crossings(1000, True, rng)
    assert plain > 0.4
    assert tempered <= 0.08
    assert tempered > 0.005  # not (yet) valid at the nominal level: see the docstring
