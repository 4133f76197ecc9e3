"""Ratio-of-sums KPIs: estimate and HAC delta-method variance against direct computations, wider
intervals under autocorrelation without any pre-test switch, and calibration on simulated data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ferrocanary.judge import hac, ratios


def _newey_west(u: np.ndarray) -> float:
    """Newey-West by the textbook: Bartlett weights up to L = ceil(J^hac.EXPONENT), times c(J, L) (hac)."""
    j = len(u)
    lag = min(math.ceil(j**hac.EXPONENT - 1e-9), j - 1)
    total = float(u @ u)
    loss = 0.0
    for ell in range(1, lag + 1):
        k = 1 - ell / (lag + 1)
        total += 2 * k * float(u[ell:] @ u[:-ell])
        loss += 2 * k * (j - ell) / j
    return total * j / (j - 1 - loss)


def _direct(x: np.ndarray) -> float:
    """The HAC variance of the linearisation, written out the slow way (Deng et al., paired per block)."""
    sums = x.sum(axis=0)
    u = (x[:, 0] / sums[0] - x[:, 1] / sums[1]) - (x[:, 2] / sums[2] - x[:, 3] / sums[3])
    return _newey_west(u)


def test_estimate_and_variance_by_hand() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(50, 150, size=(30, 4))
    track = ratios.track(x[:, 0], x[:, 1], x[:, 2], x[:, 3])
    for m in (2, 10, 29):
        s = x[: m + 1].sum(axis=0)
        assert track.log_ratio[m] == pytest.approx(math.log(s[0] / s[1]) - math.log(s[2] / s[3]), rel=1e-12)
        assert track.variance[m] == pytest.approx(_direct(x[: m + 1]), rel=1e-9)
        assert track.df[m] == pytest.approx(min(m, 1.5 * (m + 1) / (hac.bandwidth(np.array([m + 1]))[0] + 1)))
    assert math.isinf(track.variance[0])


def test_autocorrelated_blocks_widen_the_variance_without_any_switch() -> None:
    """A slow AR(1) wander (phi 0.8) of the candidate's CPU per request, 40 blocks, 400 runs. Each HAC
    variance is the direct Newey-West value; on average it recovers about half of the estimate's true
    variance (measured 0.50 over 1,000 runs), where the independent-blocks variance sees a tenth
    (0.10): bounds 0.35 and 3x. No pre-test picks the estimator."""
    rng = np.random.default_rng(2)
    blocks = 40
    est, v_hac, v_iid = [], [], []
    for run in range(400):
        drift = np.zeros(blocks)
        for t in range(1, blocks):
            drift[t] = 0.8 * drift[t - 1] + rng.normal(0, 0.05)
        requests = rng.poisson(1000, size=(blocks, 2)).astype(float)
        cpu_c = requests[:, 0] * 0.004 * np.exp(drift + rng.normal(0, 0.01, blocks))
        cpu_b = requests[:, 1] * 0.008 * np.exp(rng.normal(0, 0.01, blocks))
        track = ratios.track(requests[:, 0], cpu_c, requests[:, 1], cpu_b)
        x = np.stack((requests[:, 0], cpu_c, requests[:, 1], cpu_b), axis=1)
        if run == 0:
            assert track.variance[-1] == pytest.approx(_direct(x), rel=1e-9)
        sums = x.sum(axis=0)
        u = (x[:, 0] / sums[0] - x[:, 1] / sums[1]) - (x[:, 2] / sums[2] - x[:, 3] / sums[3])
        est.append(track.log_ratio[-1])
        v_hac.append(track.variance[-1])
        v_iid.append(float(u @ u) * blocks / (blocks - 1))
    truth = float(np.var(est))
    assert np.mean(v_hac) / truth > 0.35
    assert np.mean(v_hac) > 3 * np.mean(v_iid)
    assert not hasattr(track, "grouped")


def test_variance_is_calibrated_on_simulated_paired_blocks() -> None:
    """2,000 simulated analyses of 40 blocks with common and arm-specific CPU noise, equal traffic:
    the mean HAC variance is the variance of the estimate within 8% (s.e. of a variance from 2,000
    draws: 3%), and the Student-t interval at the HAC degrees of freedom (12) misses 5% of the time
    (s.e. 0.5 points; bounds 3.5%-6.5%)."""
    rng = np.random.default_rng(4)
    d, v = [], []
    for _ in range(2000):
        req_c = rng.poisson(3000 * np.ones(40)).astype(float)
        req_b = rng.poisson(3000 * np.ones(40)).astype(float)
        common = rng.normal(0, 0.1, 40)
        cpu_c = req_c * 0.004 * np.exp(common + rng.normal(0, 0.05, 40))
        cpu_b = req_b * 0.008 * np.exp(common + rng.normal(0, 0.05, 40))
        t = ratios.track(req_c, cpu_c, req_b, cpu_b)
        d.append(t.log_ratio[-1])
        v.append(t.variance[-1])
    est, var = np.array(d), np.array(v)
    assert var.mean() / est.var() == pytest.approx(1.0, abs=0.08)
    z = (est - math.log(2.0)) / np.sqrt(var)
    miss = float(np.mean(np.abs(z) > stats.t.isf(0.025, hac.degrees_of_freedom(np.array([40]))[0])))
    assert 0.035 <= miss <= 0.065
