"""Count e-processes under over-dispersion (issues 13 and 18): the predictable dispersion estimates
by hand, near 1 on Poisson counts, what they do (and do not) do for the error guard's type I error
under per-arm error bursts, and, against the burst size estimated before issue 18 on the same
draws, that quiet blocks with many errors drop the tempering quickly while bursts keep it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ferrocanary.judge import counts
from ferrocanary.judge.counts import Float
from ferrocanary.judge.tracks import _non_inferior_log_e
from ferrocanary.model.analysis import GuardKind, GuardRail


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
    """Blocks 0 and 1 leave the burst size at its prior mean: block 0 sees nothing, block 1 sees one
    block, whose spread around its own rate is 0. Block 2 sees two: each arm's S = sum (k_i - n_i
    r)^2 is (m + c m^2) chi-squared with one degree of freedom (equal exposures, m the mean per
    block), so the posterior over the grid is computed here with scipy's gamma density. Changing
    block 2's counts does not change phi_2."""
    k_c, k_b = np.array([4.0, 0.0, 9.0]), np.array([2.0, 6.0, 0.0])
    e_c, e_b = np.array([100.0, 100.0, 100.0]), np.array([300.0, 300.0, 300.0])
    phi = counts.burst_dispersion(k_c, k_b, e_c, e_b)
    grid = np.asarray(counts.CV2_GRID)
    prior = np.where(grid >= 1.0, 0.5 / np.sum(grid >= 1.0), 0.5 / np.sum(grid < 1.0))
    assert counts.PRIOR_CV2_HIGH == 0.5
    prior_mean = float(np.sum(prior * grid))
    assert prior_mean == pytest.approx(1.21, abs=0.01)
    # block 0: half an event expected in each arm, pi = 1/2: phi = 1 + c (1/2 x 1/2 + 1/2 x 1/2)
    assert phi[0] == pytest.approx(1.0 + prior_mean * 0.5)
    # block 1: mu_c = 100 x 4.5/100, mu_b = 300 x 2.5/300, one block says nothing about c
    mu_c, mu_b = 4.5, 2.5
    pi = mu_c / (mu_c + mu_b)
    assert phi[1] == pytest.approx(1.0 + prior_mean * ((1 - pi) * mu_c + pi * mu_b))
    # block 2: candidate S = (4 - 2)^2 + (0 - 2)^2 = 8 at m = 2,
    # baseline S = (2 - 4)^2 + (6 - 4)^2 = 8 at m = 4
    log_post = (
        np.log(prior)
        + stats.gamma.logpdf(8.0, 0.5, scale=2.0 * (2.0 + grid * 4.0))
        + stats.gamma.logpdf(8.0, 0.5, scale=2.0 * (4.0 + grid * 16.0))
    )
    post = np.exp(log_post - log_post.max())
    cv2 = float(np.sum(post * grid) / np.sum(post))
    mu_c, mu_b = 100 * 4.5 / 200, 300 * 8.5 / 600
    pi = mu_c / (mu_c + mu_b)
    assert phi[2] == pytest.approx(1.0 + cv2 * ((1 - pi) * mu_c + pi * mu_b))
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
    per-block factor in 0.8% measured (bound 1.5%; 1.9% with the burst size estimated before issue
    18): it grows with the block's expected counts, which a factor pooled over the 5% step's small
    blocks did not. At the 50% step each arm expects 12 errors a block, so the right factor is 1 + 12
    = 13 (measured 13.0 at the last block); on Poisson counts (300 runs) it falls toward 1 (under 2).
    """
    rng = np.random.default_rng(1)
    bursty, phi_bursty = _burst_crossings(1000, rng, 1.0)
    poisson, phi_poisson = _burst_crossings(300, rng, 0.0)
    assert bursty <= 0.015
    assert 11.0 < phi_bursty < 15.0
    assert poisson <= 0.005
    assert phi_poisson < 2.0


def _previous_burst_dispersion(k_c: Float, k_b: Float, exposure_c: Float, exposure_b: Float) -> Float:
    """The error guard's burst factor before issue 18, kept to measure the new one on the same draws:
    each build's squared CV by moments around a rate with a whole first block of pseudo-exposure,
    shrunk toward 1 with the weight of 3 average blocks whatever the blocks were worth."""

    def arm(k: Float, n: Float) -> tuple[Float, Float]:
        def before(x: Float) -> Float:
            return np.concatenate(([0.0], np.cumsum(x)[:-1]))

        seen_k, seen_n, seen = before(k), before(n), before(np.ones_like(n))
        rate = (seen_k + 0.5) / (seen_n + max(float(n[0]), 1.0))
        excess = before(k * k) - 2.0 * rate * before(k * n) + rate**2 * before(n * n) - rate * seen_n
        squares = rate**2 * before(n * n)
        prior_weight = 3.0 * np.where(seen > 0, squares / np.maximum(seen, 1.0), 1.0)
        return np.maximum(0.0, (excess + prior_weight) / (squares + prior_weight)), n * rate

    cv2_c, mu_c = arm(k_c, exposure_c)
    cv2_b, mu_b = arm(k_b, exposure_b)
    pi = mu_c / (mu_c + mu_b)
    return np.asarray(np.maximum(1.0, (1 - pi) * (1 + cv2_c * mu_c) + pi * (1 + cv2_b * mu_b)))


def _first_shown(le: Float, threshold: float) -> int:
    hit = np.nonzero(le >= threshold)[0]
    return int(hit[0]) + 1 if hit.size else 99


def test_quiet_blocks_with_many_errors_drop_the_tempering_within_a_few_blocks() -> None:
    """Issue 18's scale bench: 60,000 requests per build per block (1,000 rps, one-minute blocks),
    0.1% errors in both, no bursts; 1,000 runs, seed 3. Each block's spread then pins the burst size
    to a few hundredths (its moment has SD 0.024 at 60 events), so the mean phi falls from the
    prior's 74 at block 1 to 2.3 at block 3 and 1.4 at block 7, and the error guard shows
    non-inferiority (rate ratio below 2, alpha 0.05) by block 6 in >= 99.5% of runs (measured
    99.9%). The previous factor, whose prior kept c near 3/(n+3) after n quiet blocks, still had
    phi 17 at block 7 and showed 77.6% by block 6.
    """
    rng = np.random.default_rng(3)
    guard = GuardRail(name="errors", kind=GuardKind.ERROR_RATE)
    threshold = math.log(1 / 0.05)
    runs, blocks = 1000, 8
    phis, shown, shown_before = np.zeros(blocks), [], []
    for _ in range(runs):
        rc, rb = rng.poisson(60_000.0, (2, blocks)).astype(float)
        ec = rng.binomial(rc.astype(int), 0.001).astype(float)
        eb = rng.binomial(rb.astype(int), 0.001).astype(float)
        phi = counts.burst_dispersion(ec, eb, rc, rb)
        phis += phi / runs
        shown.append(_first_shown(_non_inferior_log_e((ec, eb), (rc, rb), guard, phi), threshold))
        previous = _previous_burst_dispersion(ec, eb, rc, rb)
        shown_before.append(_first_shown(_non_inferior_log_e((ec, eb), (rc, rb), guard, previous), threshold))
    assert phis[1] > 50.0  # one block says nothing about the burst size: the prior's tempering
    assert phis[3] < 3.0
    assert phis[-1] < 1.5
    assert np.mean(np.array(shown) <= 6) >= 0.995
    assert np.mean(np.array(shown_before) <= 6) < 0.85


def test_bursts_at_high_counts_keep_the_tempering_without_more_false_alarms() -> None:
    """Per-build, per-block gamma bursts (CV 1) at 60 expected errors per build per block, equal
    rates, 50/50 traffic from the first block, 30 blocks; 1,000 null runs, seed 2, the harm test at
    the guard's alpha 0.005. The right factor is 1 + 60 = 61: the mean phi of the last block stays
    near it (measured 63; the previous factor 59), and the harm e-process crosses in no more runs
    than with the previous factor on the same draws (measured 28.9% against 30.4%; after block 0
    3.1% against 3.5%). Both are far above 0.5% because of block 0: before it nothing is known of
    the rates, so it is tempered for half an expected event (phi 1.6), and a burst there crosses in
    26% of these runs whatever the estimator (the counts module docstring).
    """
    rng = np.random.default_rng(2)
    blocks = 30
    n = np.full(blocks, 60_000.0)
    last, crossed, crossed_before, late, late_before = 0.0, 0, 0, 0, 0
    for _ in range(1000):
        ec = rng.poisson(60.0 * rng.gamma(1.0, 1.0, blocks)).astype(float)
        eb = rng.poisson(60.0 * rng.gamma(1.0, 1.0, blocks)).astype(float)
        phi = counts.burst_dispersion(ec, eb, n, n)
        last += phi[-1] / 1000
        now = _first_shown(counts.log_e_process(ec, eb, n, n, phi=phi), math.log(200))
        before = _first_shown(
            counts.log_e_process(ec, eb, n, n, phi=_previous_burst_dispersion(ec, eb, n, n)), math.log(200)
        )
        crossed, crossed_before = crossed + (now < 99), crossed_before + (before < 99)
        late, late_before = late + (1 < now < 99), late_before + (1 < before < 99)
    assert 45.0 < last < 80.0
    assert crossed <= crossed_before
    assert late <= late_before
