"""The simulator's production stressors (issue 13): each one does what its name says, alone, and with
every stressor off the simulator draws exactly what it drew before they existed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ferrocanary.bench import judge, sim


def test_ar1_has_the_stationary_sd_and_the_lag_one_correlation() -> None:
    """10,000 series of 120 steps: the marginal s.d. and lag-1 correlation match sigma and phi within
    a few Monte-Carlo standard errors (s.e. of the correlation about 0.001 here)."""
    z = np.random.default_rng(0).standard_normal((10_000, 120))
    x = sim.ar1(z, 0.9, 0.3)
    assert x[:, 0].std() == pytest.approx(0.3, rel=0.03)
    assert x[:, -1].std() == pytest.approx(0.3, rel=0.03)
    lag1 = np.mean(x[:, 1:] * x[:, :-1]) / np.mean(x * x)
    assert lag1 == pytest.approx(0.9, abs=0.01)
    assert np.array_equal(sim.ar1(z, 0.0, 0.3), 0.3 * z)  # phi 0: the plain draws


def test_no_stressor_keeps_the_plain_draws() -> None:
    plain = sim.simulate(sim.Scenario(0.4, 20.0), 2, np.random.default_rng(5))
    named = sim.simulate(sim.scenario(0.4, 20.0, "exp1.1", "none"), 2, np.random.default_rng(5))
    for name in ("requests", "counts", "errors", "cpu", "memory", "pods"):
        assert np.array_equal(getattr(plain, name), getattr(named, name))
    assert sim.changed(sim.scenario(0.4, 20.0, "exp1.1", "none")) == {}


def test_error_bursts_are_over_dispersed_with_the_configured_cv() -> None:
    """Per-minute error counts at 100 rps (about 12 expected at 50%): Poisson would give a variance
    equal to the mean; a gamma factor with CV 1 adds mean^2."""
    scn = sim.scenario(0.4, 100.0, "exp1.1", "error-bursts", "error-rate")
    batch = sim.simulate(scn, 200, np.random.default_rng(1))
    late = batch.errors[:, 40:, 0]  # baseline at 50%: constant expected count
    mean, var = late.mean(), late.var()
    assert var == pytest.approx(mean + mean**2, rel=0.15)


def test_errors_doubled_doubles_the_candidate_rate() -> None:
    scn = sim.scenario(0.3, 100.0, "exp1.1", "errors-doubled", "error-rate")
    batch = sim.simulate(scn, 50, np.random.default_rng(2))
    rate = batch.errors.sum(axis=(0, 1)) / batch.requests.sum(axis=(0, 1))
    assert rate[1] / rate[0] == pytest.approx(2.0, rel=0.08)
    assert sim.changed(scn) == {"candidate_error_ratio": 2.0}


def test_whole_pods_run_at_least_one_pod_per_arm() -> None:
    batch = sim.simulate(sim.scenario(0.6, 20.0, "exp1.1", "whole-pods"), 1, np.random.default_rng(3))
    assert np.all(batch.pods >= 1.0)
    assert np.array_equal(batch.pods, np.round(batch.pods))


def test_trend_moves_latency_over_the_run() -> None:
    """With log latency falling by 0.4 over the run, the baseline's median falls by about exp(-0.4)
    (pooled over 50 runs; each minute's common noise has s.d. 0.3, so 50 runs give s.e. 0.04 a minute)."""
    batch = sim.simulate(sim.scenario(0.6, 100.0, "exp1.1", "trend"), 50, np.random.default_rng(4))
    first = batch.counts[:, :10, 0].sum(axis=(0, 1))
    last = batch.counts[:, -10:, 0].sum(axis=(0, 1))
    q = [np.searchsorted(np.cumsum(c) / c.sum(), 0.5) for c in (first, last)]
    assert math.log(batch.bounds[q[1]] / batch.bounds[q[0]]) == pytest.approx(-0.4 * 110 / 119, abs=0.15)


def test_varying_traffic_swings_the_request_rate() -> None:
    batch = sim.simulate(sim.scenario(0.6, 100.0, "exp1.1", "varying-traffic"), 4, np.random.default_rng(6))
    total = batch.requests.sum(axis=2).mean(axis=0)
    assert total.max() / total.min() == pytest.approx(math.exp(1.0), rel=0.1)


def test_heavy_tail_keeps_the_quantile_ratio() -> None:
    """Every stressor keeps the candidate an exact rescale, so the p99 ratio stays the truth."""
    scn = sim.scenario(0.6, 100.0, "exp1.1", "heavy-tail")
    batch = sim.simulate(scn, 20, np.random.default_rng(7))
    pooled = batch.counts.sum(axis=(0, 1))
    p99 = judge.peers.quantiles.prometheus_quantile(pooled, batch.bounds, 0.99)
    assert p99[1] / p99[0] == pytest.approx(0.6, rel=0.06)
    # the tail is heavier than the plain mixture's: more mass above 2 s
    plain = sim.mixture_cdf(np.log(np.array([2.0])))
    heavy = sim.mixture_cdf(np.log(np.array([2.0])), scn)
    assert heavy[0] < plain[0]


def test_stress_cells_name_their_stressor_and_kpi() -> None:
    cells = judge.stress_cells(10)
    names = {c.stressor for c in cells}
    assert names == set(sim.STRESSORS)
    assert {c.kpi for c in cells} == {"p99-latency", "throughput-per-cpu", "error-rate"}
    with pytest.raises(ValueError, match="unknown stressor"):
        sim.scenario(0.6, 20.0, "exp1.1", "sunspots")


def test_gamma_burst_factor_has_mean_one() -> None:
    """scipy's gamma with shape 1/CV^2 and scale CV^2: mean 1 and the configured CV (what _errors draws)."""
    shape = 1.0 / 1.0**2
    assert stats.gamma(shape, scale=1.0 / shape).mean() == pytest.approx(1.0)
    assert stats.gamma(shape, scale=1.0 / shape).std() == pytest.approx(1.0)
