"""Ratio-of-sums KPIs: estimate and delta-method variance against direct computations, the switch to
5-block groups under autocorrelation, and calibration on simulated data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ferrocanary.judge import ratios


def _direct(x: np.ndarray, group: int = 1) -> float:
    """var(u)/J of the linearisation, written out the slow way (Deng et al., paired per block)."""
    if group > 1:
        x = np.array([x[i : i + group].sum(axis=0) for i in range(0, len(x), group)])
    means = x.mean(axis=0)
    u = (x[:, 0] / means[0] - x[:, 1] / means[1]) - (x[:, 2] / means[2] - x[:, 3] / means[3])
    return float(u.var(ddof=1) / len(u))


def test_estimate_and_variance_by_hand() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(50, 150, size=(30, 4))
    track = ratios.track(x[:, 0], x[:, 1], x[:, 2], x[:, 3])
    for m in (2, 10, 29):
        s = x[: m + 1].sum(axis=0)
        assert track.log_ratio[m] == pytest.approx(math.log(s[0] / s[1]) - math.log(s[2] / s[3]), rel=1e-12)
        if not track.grouped[m]:
            assert track.variance[m] == pytest.approx(_direct(x[: m + 1]), rel=1e-9)
    assert math.isinf(track.variance[0])


def test_autocorrelated_blocks_switch_to_five_block_groups() -> None:
    rng = np.random.default_rng(2)
    blocks = 40
    drift = np.cumsum(rng.normal(0, 0.05, blocks))  # a slow wander of the candidate's CPU per request
    requests = rng.poisson(1000, size=(blocks, 2)).astype(float)
    cpu_c = requests[:, 0] * 0.004 * np.exp(drift + rng.normal(0, 0.01, blocks))
    cpu_b = requests[:, 1] * 0.008 * np.exp(rng.normal(0, 0.01, blocks))
    track = ratios.track(requests[:, 0], cpu_c, requests[:, 1], cpu_b)
    assert track.autocorrelation[-1] > ratios.AUTOCORRELATION_LIMIT
    assert track.grouped[-1]
    x = np.stack((requests[:, 0], cpu_c, requests[:, 1], cpu_b), axis=1)
    assert track.variance[-1] == pytest.approx(_direct(x, group=5), rel=1e-9)
    assert track.df[-1] == 40 // 5 - 1
    assert track.variance[-1] > _direct(x)  # grouping widens the interval, as it should


def test_variance_is_calibrated_on_simulated_paired_blocks() -> None:
    """2,000 simulated analyses of 40 blocks with common and arm-specific CPU noise: the z-scores of the
    estimate (true log ratio log 2) have standard deviation 1 within 6% (s.e. of an SD from 2,000 draws
    is 1.6%, plus the variance's own estimation noise at J = 40)."""
    rng = np.random.default_rng(3)
    z = []
    for _ in range(2000):
        weights = np.repeat([0.05, 0.1, 0.25, 0.5], 10)
        req_c = rng.poisson(6000 * weights).astype(float)
        req_b = rng.poisson(6000 * (1 - weights)).astype(float)
        common = rng.normal(0, 0.1, 40)
        cpu_c = req_c * 0.004 * np.exp(common + rng.normal(0, 0.05, 40))
        cpu_b = req_b * 0.008 * np.exp(common + rng.normal(0, 0.05, 40))
        t = ratios.track(req_c, cpu_c, req_b, cpu_b)
        z.append((t.log_ratio[-1] - math.log(2.0)) / math.sqrt(t.variance[-1]))
    assert float(np.std(z)) == pytest.approx(1.0, abs=0.06)
