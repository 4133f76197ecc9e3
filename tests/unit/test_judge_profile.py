"""Both arms on one time profile (issue 13): hand cases for the block weights, the weighted quantile
and ratio of sums, and a drift that pooling each arm over its own profile turns into a false ratio."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ferrocanary.judge import quantiles, ratios


def test_profile_weights_by_hand() -> None:
    """omega = n_c n_b / (n_c + n_b): 10 vs 190 -> 9.5, 50 vs 50 -> 25; arm weights omega / n."""
    w_c, w_b = quantiles.profile_weights(np.array([10.0, 50.0, 0.0]), np.array([190.0, 50.0, 30.0]))
    assert w_c == pytest.approx([0.95, 0.5, 0.0])
    assert w_b == pytest.approx([0.05, 0.5, 0.0])  # a block without candidate data weighs 0 in both


def test_weighted_pool_is_the_pool_of_rescaled_blocks() -> None:
    """Weight 2 on a block is the same quantile as that block counted twice; Kish's effective size
    is n for equal weights and (sum w n)^2 / sum w^2 n otherwise."""
    counts = np.array([[4.0, 6.0, 0.0], [0.0, 5.0, 5.0]])
    edges = quantiles.Edges.from_bounds(np.array([1.0, 2.0]))
    weighted = quantiles.Pooled.of(counts, np.array([2.0, 1.0]))
    doubled = quantiles.Pooled.of(np.array([[8.0, 12.0, 0.0], [0.0, 5.0, 5.0]]))
    assert np.allclose(weighted.cum, doubled.cum)
    a = quantiles.arm_quantile(weighted, 0.5, edges).log_q
    b = quantiles.arm_quantile(doubled, 0.5, edges).log_q
    assert a == pytest.approx(b)
    assert weighted.n_raw.tolist() == [10.0, 20.0]
    assert weighted.n_eff[-1] == pytest.approx((2 * 10 + 10) ** 2 / (4 * 10 + 10))
    plain = quantiles.Pooled.of(counts)
    assert np.array_equal(plain.n_eff, plain.n_raw)


def test_a_common_drift_does_not_leak_into_the_quantile_ratio() -> None:
    """Two periods; in the second both arms are slower by the same factor. The candidate has 10% of
    the traffic in the first and 50% in the second. Pooled per arm, the candidate looks slower (its
    pool is mostly the slow period); on the common profile the ratio is exactly 1."""
    rng = np.random.default_rng(0)
    bounds = 0.001 * 1.05 ** np.arange(200)
    edges = quantiles.Edges.from_bounds(bounds)

    def draw(n: int, shift: float) -> np.ndarray:
        x = np.exp(rng.normal(math.log(0.02) + shift, 0.5, n))
        return np.bincount(np.searchsorted(bounds, x), minlength=201).astype(float)

    # expected-value style: the same per-block distribution in both arms, so the truth is ratio 1
    slow, fast = draw(200_000, 0.5), draw(200_000, 0.0)
    fast_p, slow_p = fast / fast.sum(), slow / slow.sum()
    cand = np.stack([1_000 * fast_p, 5_000 * slow_p])
    base = np.stack([9_000 * fast_p, 5_000 * slow_p])
    pooled = quantiles.ratio_track(quantiles.Pooled.of(cand), quantiles.Pooled.of(base), 0.99, edges)
    w_c, w_b = quantiles.profile_weights(cand.sum(axis=1), base.sum(axis=1))
    common = quantiles.ratio_track(
        quantiles.Pooled.of(cand, w_c), quantiles.Pooled.of(base, w_b), 0.99, edges
    )
    assert pooled.log_ratio[-1] > 0.1  # the leak: 10%+ "slower" with no difference at all
    assert common.log_ratio[-1] == pytest.approx(0.0, abs=1e-9)


def test_a_common_cpu_drift_does_not_leak_into_the_throughput_ratio() -> None:
    """CPU per request doubles in the second period for both arms; the candidate needs half the
    baseline's CPU per request. Weighted to one profile the ratio is exactly 2."""
    req_c, req_b = np.array([100.0, 5_000.0]), np.array([9_900.0, 5_000.0])
    per_request = np.array([0.004, 0.008])
    cpu_c, cpu_b = req_c * per_request * 0.5, req_b * per_request
    plain = ratios.track(req_c, cpu_c, req_b, cpu_b)
    w_c, w_b = quantiles.profile_weights(req_c, req_b)
    common = ratios.track(req_c * w_c, cpu_c * w_c, req_b * w_b, cpu_b * w_b)
    assert math.exp(plain.log_ratio[-1]) < 1.5  # pooled per arm: the doubling hides most of the gain
    assert math.exp(common.log_ratio[-1]) == pytest.approx(2.0)
