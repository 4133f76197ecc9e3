"""Quantiles from histogram buckets: hand cases, scipy references, the two variance terms, the bucket
check, and the properties a ratio must have (swap arms -> inverse; scale latencies -> scaled)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from ferrocanary.judge import hac, quantiles

BOUNDS = np.array([1.0, 2.0, 4.0, 8.0])


def _arm(counts: list[list[float]] | np.ndarray) -> quantiles.Pooled:
    return quantiles.Pooled.of(np.asarray(counts, dtype=np.float64))


def test_log_linear_interpolation_by_hand() -> None:
    edges = quantiles.Edges.from_bounds(BOUNDS)
    arm = _arm([[0, 10, 10, 0, 0]])
    # rank 10 of 20 is the top of bucket (1, 2]; rank 15 is half way through (2, 4] on the log scale.
    assert math.exp(quantiles.arm_quantile(arm, 0.5, edges).log_q[0]) == pytest.approx(2.0)
    assert math.exp(quantiles.arm_quantile(arm, 0.75, edges).log_q[0]) == pytest.approx(math.sqrt(8.0))


def test_prometheus_histogram_quantile_by_hand() -> None:
    counts = np.array([[0, 10, 10, 0, 0], [4, 0, 0, 0, 0], [0, 0, 0, 0, 3], [0, 0, 0, 0, 0]], dtype=float)
    got = quantiles.prometheus_quantile(counts, BOUNDS, 0.75)
    assert got[0] == pytest.approx(3.0)  # linear inside (2, 4]
    assert got[1] == pytest.approx(0.75)  # first bucket interpolates from 0
    assert got[2] == pytest.approx(8.0)  # +Inf bucket: the last finite bound
    assert math.isnan(got[3])


def test_quantile_and_rank_interval_error_against_scipy_lognormal() -> None:
    """200,000 lognormal samples on fine buckets (factor 1.02): the p99 estimate is within 1% of
    scipy's ppf and term (a) is within 10% of the asymptotic sqrt(p(1-p)/n) / (q f(q))."""
    rng = np.random.default_rng(3)
    dist = stats.lognorm(s=0.5, scale=0.02)
    bounds = 0.001 * 1.02 ** np.arange(400)
    samples = dist.rvs(size=200_000, random_state=rng)
    counts = np.bincount(np.searchsorted(bounds, samples), minlength=bounds.size + 1)[None, :]
    q = quantiles.arm_quantile(_arm(counts), 0.99, quantiles.Edges.from_bounds(bounds))
    truth = dist.ppf(0.99)
    assert math.exp(q.log_q[0]) == pytest.approx(truth, rel=0.01)
    asymptotic = math.sqrt(0.99 * 0.01 / 200_000) / (truth * dist.pdf(truth))
    assert math.sqrt(q.var_rank[0]) == pytest.approx(asymptotic, rel=0.10)


def _multinomial_blocks(rng: np.random.Generator, blocks: int, n: int, log_shift: np.ndarray) -> np.ndarray:
    bounds = 0.001 * 1.05 ** np.arange(200)
    cdf = stats.norm.cdf((np.log(bounds)[None, :] - math.log(0.02) - log_shift[:, None]) / 0.5)
    probs = np.diff(np.concatenate((np.zeros((blocks, 1)), cdf, np.ones((blocks, 1))), axis=1), axis=1)
    return rng.multinomial(n, probs).astype(float)


def test_block_term_sees_per_minute_noise_that_the_rank_term_cannot() -> None:
    """60 blocks of 2,000 requests per arm. Without extra noise the block-robust variance agrees with the
    rank-interval one (within 35%: it is estimated from 60 blocks); with arm-specific per-minute noise of
    sigma 0.15 it is several times larger, while term (a) does not move."""
    rng = np.random.default_rng(5)
    edges = quantiles.Edges.from_bounds(0.001 * 1.05 ** np.arange(200))
    calm = quantiles.ratio_track(
        _arm(_multinomial_blocks(rng, 60, 2000, np.zeros(60))),
        _arm(_multinomial_blocks(rng, 60, 2000, np.zeros(60))),
        0.9,
        edges,
    )
    assert calm.var_block[-1] / calm.var_rank[-1] == pytest.approx(1.0, abs=0.35)
    noisy = quantiles.ratio_track(
        _arm(_multinomial_blocks(rng, 60, 2000, rng.normal(0, 0.15, 60))),
        _arm(_multinomial_blocks(rng, 60, 2000, rng.normal(0, 0.15, 60))),
        0.9,
        edges,
    )
    assert noisy.var_block[-1] > 3 * noisy.var_rank[-1]
    assert noisy.variance[-1] == noisy.var_block[-1]


def test_block_variance_matches_a_direct_computation() -> None:
    rng = np.random.default_rng(8)
    c = _multinomial_blocks(rng, 12, 500, rng.normal(0, 0.1, 12))
    b = _multinomial_blocks(rng, 12, 800, rng.normal(0, 0.1, 12))
    edges = quantiles.Edges.from_bounds(0.001 * 1.05 ** np.arange(200))
    track = quantiles.ratio_track(_arm(c), _arm(b), 0.95, edges)
    m = 9  # prefix of 10 blocks, computed the slow way
    influences = []
    for counts in (c, b):
        q = quantiles.arm_quantile(_arm(counts[: m + 1]), 0.95, edges)
        k, frac, slope, n = q.k[-1], q.frac[-1], q.slope[-1], q.n[-1]
        below = np.array([blk[:k].sum() + frac * blk[k] for blk in counts[: m + 1]])
        influences.append(-(below - 0.95 * counts[: m + 1].sum(axis=1)) * slope / n)
    u = influences[0] - influences[1]
    u = u - u.mean()
    lag = math.ceil((m + 1) ** hac.EXPONENT - 1e-9)  # Newey-West, Bartlett weights, L = ceil(10^0.7) = 6
    total = float(u @ u) + sum(
        2 * (1 - ell / (lag + 1)) * float(u[ell:] @ u[:-ell]) for ell in range(1, lag + 1)
    )
    loss = sum(2 * (1 - ell / (lag + 1)) * (m + 1 - ell) / (m + 1) for ell in range(1, lag + 1))
    assert track.var_block[m] == pytest.approx(total * (m + 1) / (m - loss), rel=1e-9)


def test_bucket_growth_check() -> None:
    rng = np.random.default_rng(2)
    default = np.array([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
    fine = 0.001 * 1.1 ** np.arange(100)
    for bounds, expected in ((default, math.log(2.5)), (fine, math.log(1.1))):
        samples = stats.lognorm(s=0.5, scale=0.02).rvs(size=(5, 400), random_state=rng)
        counts = np.stack(
            [np.bincount(np.searchsorted(bounds, s), minlength=bounds.size + 1) for s in samples]
        )
        pooled = _arm(counts.astype(float))
        growth = quantiles.max_growth(pooled, pooled, quantiles.Edges.from_bounds(bounds))
        assert growth[-1] == pytest.approx(expected, rel=1e-9)
    # Quantiles in the +Inf bucket cannot be resolved at all.
    top = _arm(np.array([[0, 0, 30, 70.0]]))
    assert (
        quantiles.max_growth(top, top, quantiles.Edges.from_bounds(np.array([1.0, 1.1, 1.21])))[-1]
        == math.inf
    )
    # Too little data: not judged yet.
    few = _arm(np.array([[0, 5, 5, 0.0]]))
    assert math.isnan(
        quantiles.max_growth(few, few, quantiles.Edges.from_bounds(np.array([1.0, 1.1, 1.21])))[-1]
    )


counts_strategy = st.lists(
    st.lists(st.integers(min_value=0, max_value=60), min_size=30, max_size=30), min_size=2, max_size=6
).filter(lambda blocks: sum(map(sum, blocks)) > 40)


@settings(max_examples=60, deadline=None)
@given(candidate=counts_strategy, baseline=counts_strategy, p=st.sampled_from([0.5, 0.9, 0.99]))
def test_swapping_arms_inverts_the_ratio(
    candidate: list[list[int]], baseline: list[list[int]], p: float
) -> None:
    blocks = min(len(candidate), len(baseline))
    c, b = np.array(candidate[:blocks], float), np.array(baseline[:blocks], float)
    edges = quantiles.Edges.from_bounds(0.001 * 1.1 ** np.arange(29))
    forward = quantiles.ratio_track(_arm(c), _arm(b), p, edges)
    backward = quantiles.ratio_track(_arm(b), _arm(c), p, edges)
    np.testing.assert_allclose(forward.log_ratio, -backward.log_ratio, atol=1e-12)
    np.testing.assert_allclose(forward.variance, backward.variance, rtol=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    counts=counts_strategy, scale=st.floats(min_value=0.01, max_value=100.0), p=st.sampled_from([0.5, 0.99])
)
def test_scaling_all_latencies_scales_the_quantile(counts: list[list[int]], scale: float, p: float) -> None:
    arm = _arm(np.array(counts, float))
    bounds = 0.001 * 1.1 ** np.arange(29)
    base = quantiles.arm_quantile(arm, p, quantiles.Edges.from_bounds(bounds))
    scaled = quantiles.arm_quantile(arm, p, quantiles.Edges.from_bounds(bounds * scale))
    np.testing.assert_allclose(scaled.log_q, base.log_q + math.log(scale), atol=1e-9)
    np.testing.assert_allclose(scaled.var_rank, base.var_rank, rtol=1e-9)


@settings(max_examples=60, deadline=None)
@given(counts=counts_strategy, shift=st.integers(min_value=-5, max_value=5))
def test_scaling_the_candidate_by_c_moves_the_ratio_by_c(counts: list[list[int]], shift: int) -> None:
    """On exponential buckets (factor g), multiplying the candidate's latencies by g^k moves every count
    k buckets up; the p99 ratio then moves by exactly g^k."""
    g = 1.1
    base = np.array(counts, float)
    padded = np.zeros((base.shape[0], base.shape[1] + 12))
    padded[:, 6 : 6 + base.shape[1]] = base  # room to shift without touching the open-ended buckets
    shifted = np.roll(padded, shift, axis=1)
    edges = quantiles.Edges.from_bounds(0.001 * g ** np.arange(padded.shape[1] - 1))
    same = quantiles.ratio_track(_arm(padded), _arm(padded), 0.99, edges)
    moved = quantiles.ratio_track(_arm(shifted), _arm(padded), 0.99, edges)
    np.testing.assert_allclose(same.log_ratio, 0.0, atol=1e-12)
    np.testing.assert_allclose(moved.log_ratio, shift * math.log(g), atol=1e-9)
