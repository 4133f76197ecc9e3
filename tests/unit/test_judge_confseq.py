"""Confidence sequences: the normal-mixture boundary against its closed form, the Student-t calibration
against scipy, and time-uniform coverage on simulated data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from ferrocanary.judge import confseq, hac


def test_multiplier_matches_the_normal_mixture_boundary_in_sum_form() -> None:
    # Howard et al.'s two-sided normal mixture on a sum S with variance v:
    #   |S| <= sqrt((v + rho) ln((v + rho) / (rho alpha^2))).
    # On the mean scale (I = v, sd = 1/sqrt(v)) the multiplier is that bound / sqrt(v).
    for v, rho, alpha in [(100.0, 10.0, 0.05), (5.0, 50.0, 0.01), (1e4, 3.0, 0.05)]:
        closed = math.sqrt((v + rho) * math.log((v + rho) / (rho * alpha**2))) / math.sqrt(v)
        assert float(confseq.multiplier(v / rho, alpha)) == pytest.approx(closed, rel=1e-12)
        assert confseq.multiplier_scalar(v, rho, alpha) == pytest.approx(closed, rel=1e-12)
    # Hand value: I/rho = 10, alpha = 0.05 -> sqrt(1.1 (2.3979 + 5.9915)) = sqrt(9.2283) = 3.0378
    assert float(confseq.multiplier(10.0, 0.05)) == pytest.approx(3.0378, abs=1e-4)


def test_multiplier_is_about_three_over_a_wide_range_and_tightest_at_the_horizon() -> None:
    t = np.array([10, 20, 30, 60, 120]) * 60.0
    m = confseq.multiplier_at_time(t, 1800.0, 0.05)
    assert np.all((m > 2.9) & (m < 3.4))
    # The price over a fixed-horizon 1.96 is smallest around the information horizon (30 minutes).
    grid = np.linspace(300, 20000, 400)
    cheapest = grid[np.argmin(confseq.multiplier_at_time(grid, 1800.0, 0.05))]
    assert 900 < cheapest < 3600


def test_student_calibration_matches_scipy() -> None:
    assert float(confseq.student(1.959963985, 10)) == pytest.approx(stats.t.isf(0.025, 10), rel=1e-9)
    m = np.array([2.0, 3.1, 4.0])
    df = np.array([19.0, 19.0, 200.0])
    expected = stats.t.isf(stats.norm.sf(m), df)
    np.testing.assert_allclose(confseq.student(m, df), expected, rtol=1e-9)
    assert float(confseq.student(3.0, 1e7)) == pytest.approx(3.0, rel=1e-5)
    assert float(confseq.student(np.inf, 5)) == math.inf


def test_time_uniform_coverage_of_a_gaussian_mean() -> None:
    """4000 random walks of 400 looks each (fixed seed): the fraction whose sequence ever excludes the truth
    stays below alpha = 0.05. A fixed-horizon 1.96 interval, checked at every look, fails far more often,
    which shows the test can fail. 4000 runs give a Monte-Carlo s.e. of 0.35 points at 5%."""
    rng = np.random.default_rng(11)
    runs, looks = 4000, 400
    x = rng.normal(0.7, 1.0, size=(runs, looks))
    n = np.arange(1, looks + 1)
    mean = np.cumsum(x, axis=1) / n
    rho = 100.0 / confseq.rho_scale(0.05)  # tightest at I = 100
    half = confseq.multiplier(n / rho, 0.05) / np.sqrt(n)
    ever_out = (np.abs(mean - 0.7) > half).any(axis=1).mean()
    naive_out = (np.abs(mean - 0.7) > 1.96 / np.sqrt(n)).any(axis=1).mean()
    assert ever_out <= 0.05
    assert naive_out > 0.3


def test_one_sided_boundary_is_where_the_half_normal_mixture_reaches_one_over_alpha() -> None:
    """Against scipy's quadrature: on a sum S with variance v, the one-sided mixture
    int_0^inf exp(l S - l^2 v / 2) 2 N(l; 0, 1/rho) dl equals 1/alpha at S = m sqrt(v)."""
    for v, rho, alpha in [(100.0, 10.0, 0.05), (5.0, 50.0, 0.01), (400.0, 30.0, 0.05)]:
        m = float(confseq.one_sided(np.array([v / rho]), alpha)[0])
        s = m * math.sqrt(v)

        def density(lam: float, s: float = s, v: float = v, rho: float = rho) -> float:
            return (
                math.exp(lam * s - lam**2 * v / 2)
                * 2
                * math.sqrt(rho / (2 * math.pi))
                * math.exp(-rho * lam**2 / 2)
            )

        value, _ = integrate.quad(density, 0.0, np.inf)
        assert value == pytest.approx(1.0 / alpha, rel=1e-6)
        assert confseq.one_sided_scalar(v, rho, alpha) == pytest.approx(m, rel=1e-4)
        # the one-sided boundary is below the two-sided one at the same alpha (it spends alpha once)
        assert m < float(confseq.multiplier(v / rho, alpha))


def test_calibrated_info_tables_match_the_exact_functions() -> None:
    used = np.arange(0, 130)
    info = np.linspace(0.0, 300.0, 130) ** 1.3
    rho = confseq.rho_track(info, 40.0 * used, used, used >= 20, interval=60.0, horizon=1800.0, alpha=0.05)
    fast = confseq.calibrated_info(info, rho, used, None, 0.05)
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = confseq.student(confseq.one_sided(info / rho, 0.05), hac.degrees_of_freedom(used))
    ok = used > 0
    np.testing.assert_allclose(fast[ok], exact[ok], rtol=1e-3)
    assert fast[0] == math.inf


def test_one_sided_fast_reads_no_information_as_an_unbounded_multiplier() -> None:
    """NaN, zero, negative and infinite I / rho read inf without a root search, as the exact function
    does; finite ratios beyond the table still get the exact root."""
    ratio = np.array([np.nan, 0.0, -1.0, np.inf, 1e-8, 1.0, 1e8])
    fast = confseq.one_sided_fast(ratio, 0.05)
    assert fast[:4].tolist() == [math.inf] * 4
    np.testing.assert_allclose(fast[4:], confseq.one_sided(ratio[4:], 0.05), rtol=1e-4)


def test_the_mixture_is_fixed_at_the_first_look_that_may_decide_and_traffic_is_its_clock() -> None:
    """Before the first eligible look I / rho is rho_scale(2 alpha) x t / horizon; from it on the value
    fixed there grows with the effective observation count only, whatever the estimated information
    does (here it stalls and falls after the fixing look, as a variance estimated from few blocks can)."""
    used = np.arange(1, 41)
    clock = 1000.0 * used.astype(float) ** 1.5  # traffic that ramps up
    info = np.where(used <= 20, 50.0 * used, 400.0)
    scale = confseq.rho_scale(0.1)
    ratio = confseq.clock_ratio(clock, used, used >= 20, interval=60.0, horizon=1800.0, alpha=0.05)
    np.testing.assert_allclose(ratio[:20], scale * used[:20] * 60.0 / 1800.0)
    np.testing.assert_allclose(ratio[19:], ratio[19] * clock[19:] / clock[19])
    assert np.all(np.diff(ratio) > 0)
    rho = confseq.rho_track(info, clock, used, used >= 20, interval=60.0, horizon=1800.0, alpha=0.05)
    np.testing.assert_allclose(info / rho, ratio)
    # no clock yet (no observations): no boundary
    none = confseq.rho_track(
        [1.0, 2.0], [0.0, 5.0], [1, 2], [True, True], interval=60.0, horizon=1800.0, alpha=0.05
    )
    assert none[0] == math.inf
    assert math.isfinite(none[1])


def test_one_sided_time_uniform_crossing_rate_with_a_fixed_mixture() -> None:
    """4000 random walks under the null, 400 looks each (seed 12), rho fixed in advance: the fraction
    that ever crosses the upper one-sided boundary stays below alpha = 0.05 (and well above the
    two-sided boundary's, which spends about alpha/2 a side)."""
    rng = np.random.default_rng(12)
    runs, looks = 4000, 400
    n = np.arange(1, looks + 1)
    z = np.cumsum(rng.normal(0.0, 1.0, size=(runs, looks)), axis=1) / np.sqrt(n)
    rho = 100.0 / confseq.rho_scale(0.1)
    one = (z > confseq.one_sided(n / rho, 0.05)).any(axis=1).mean()
    two = (z > confseq.multiplier(n / rho, 0.05)).any(axis=1).mean()
    assert one <= 0.05
    assert one > 1.5 * two
