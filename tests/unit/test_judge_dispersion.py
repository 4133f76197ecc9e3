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


def test_burst_dispersion_by_hand_and_predictable() -> None:
    """Block 0 sees nothing: both arms at PRIOR_CV2 around half an event per first block's exposure.
    Block 1 sees block 0 only. Changing block 2's counts does not change phi_2."""
    k_c, k_b = np.array([4.0, 0.0, 9.0]), np.array([2.0, 6.0, 0.0])
    e_c, e_b = np.array([100.0, 100.0, 100.0]), np.array([300.0, 300.0, 300.0])
    phi = counts.burst_dispersion(k_c, k_b, e_c, e_b)
    # block 0: rates 0.5/100 and 0.5/300, mu_c = mu_b = 0.5, pi = 1/2, cv2 = PRIOR_CV2 for both
    assert phi[0] == pytest.approx(max(1.0, 1.0 + counts.PRIOR_CV2 * 0.5))
    # block 1, candidate: rate (4 + 0.5)/(100 + 100), mu = 2.25; excess (4 - 2.25)^2 - 2.25, squares
    # 2.25^2, prior weight 3 blocks of 2.25^2
    mu_c = 100 * 4.5 / 200
    cv2_c = max(0.0, ((4 - mu_c) ** 2 - mu_c + counts.PRIOR_CV2 * 3 * mu_c**2) / (mu_c**2 * (1 + 3)))
    mu_b = 300 * 2.5 / 600
    cv2_b = max(0.0, ((2 - mu_b) ** 2 - mu_b + counts.PRIOR_CV2 * 3 * mu_b**2) / (mu_b**2 * (1 + 3)))
    pi = mu_c / (mu_c + mu_b)
    assert counts.PRIOR_CV2_BLOCKS == 3.0
    assert phi[1] == pytest.approx(max(1.0, (1 - pi) * (1 + cv2_c * mu_c) + pi * (1 + cv2_b * mu_b)))
    changed = counts.burst_dispersion(np.array([4.0, 0.0, 90.0]), np.array([2.0, 6.0, 40.0]), e_c, e_b)
    assert changed[2] == phi[2]


def _burst_crossings(runs: int, rng: np.random.Generator, cv: float) -> tuple[float, float]:
    """The harm e-process tempered by ``burst_dispersion`` on the same null runs as above (cv 0:
    Poisson); (fraction crossing at alpha 0.005, mean phi of the last block)."""
    share = np.repeat([0.05, 0.1, 0.25, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], 10)
    requests_c, requests_b = 12_000 * share, 12_000 * (1 - share)
    hits, last = 0, 0.0
    for _ in range(runs):
        g_c = rng.gamma(1 / cv**2, cv**2, 120) if cv > 0 else 1.0
        g_b = rng.gamma(1 / cv**2, cv**2, 120) if cv > 0 else 1.0
        ec = rng.poisson(0.002 * requests_c * g_c).astype(float)
        eb = rng.poisson(0.002 * requests_b * g_b).astype(float)
        phi = counts.burst_dispersion(ec, eb, requests_c, requests_b)
        last += phi[-1] / runs
        hits += counts.log_e_process(ec, eb, requests_c, requests_b, phi=phi)[-1] >= math.log(200)
    return hits / runs, last


def test_per_block_burst_tempering_cuts_the_residual_error_and_learns_the_burst_size() -> None:
    """1,000 null runs with bursts (CV 1, seed 1): one pooled factor crossed in 5.4% (above), the
    per-block factor in 1.9% measured (bound 3%): it grows with the block's expected counts, which
    a factor pooled over the 5% step's small blocks did not. Still above the nominal 0.5% (bursts
    have heavier tails than their variance says). At the 50% step each arm expects 12 errors a block,
    so the right factor is 1 + 12 = 13; on Poisson counts (300 runs) it falls toward 1 (under 2)."""
    rng = np.random.default_rng(1)
    bursty, phi_bursty = _burst_crossings(1000, rng, 1.0)
    poisson, phi_poisson = _burst_crossings(300, rng, 0.0)
    assert bursty <= 0.03
    assert 9.0 < phi_bursty < 16.0
    assert poisson <= 0.005
    assert phi_poisson < 2.0
