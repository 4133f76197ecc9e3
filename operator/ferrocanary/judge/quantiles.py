"""Quantiles from histogram buckets, their variance, and whether the buckets can resolve them at all.

All functions work on every look at once: row m of a result is the statistic over the first m+1
used blocks (prefix pooling), so replaying 120 looks costs one vectorised pass.

* Quantile: pool bucket counts, rank r = p n, interpolate log-linearly inside the bucket holding r
  (latency is scale-like; on exponential buckets this makes the estimate equivariant to scaling).
* Variance of the log quantile, the larger of
  (a) the rank-interval term (Woodruff; Price and Bonett): SE = slope of log Q at p times
      s = sqrt(p(1-p)/n), the slope measured between p-s and p+s, floored at the quantisation
      error log(g)/sqrt(12 n (1-p)); and
  (b) a block-robust term: each block's influence on the estimate through its count below the
      pooled quantile edge, candidate minus baseline, with the Newey-West (HAC) variance of ``hac``
      (bandwidth growing with the number of blocks, declared in advance). It captures per-minute
      noise, and its serial correlation, that (a) cannot see.
* Peers (Prometheus' histogram_quantile) interpolate linearly; ``prometheus_quantile`` reproduces it.

Both arms on one time profile: an arm's blocks can carry weights (``Pooled.of(counts, weights)``),
and the judge gives block j of arm a the weight omega_j / n_aj with omega_j common to both arms
(``profile_weights``), so each arm's quantile is that of the same mixture over time of its
per-block distributions. Otherwise the candidate's pool is dominated by the late, high-weight
minutes and the baseline's by the early ones, and anything that moves both arms slowly leaks into
the ratio. The rank term then uses Kish's effective sample size, and the block term the weighted
influences, so the variance comes from the same weighted values as the estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ferrocanary.judge import hac

Float = NDArray[np.float64]
Int = NDArray[np.int64]


@dataclass(frozen=True)
class Edges:
    """Log edges of each bucket (K = len(bounds) + 1); the open-ended first and last buckets are
    given the width of their neighbour so interpolation stays defined; ``growth`` is +inf for them
    (they cannot resolve anything)."""

    lower: Float
    upper: Float
    growth: Float  # log of the upper/lower edge ratio per bucket

    @classmethod
    def from_bounds(cls, bounds: Float) -> Edges:
        logb = np.log(np.asarray(bounds, dtype=np.float64))
        width_first = logb[1] - logb[0] if logb.size > 1 else math.log(2.0)
        width_last = logb[-1] - logb[-2] if logb.size > 1 else math.log(2.0)
        lower = np.concatenate(([logb[0] - width_first], logb))
        upper = np.concatenate((logb, [logb[-1] + width_last]))
        growth = upper - lower
        growth[0] = np.inf
        growth[-1] = np.inf
        return cls(lower, upper, growth)


def locate(cum: Float, pooled: Float, n: Float, p: Float, edges: Edges) -> tuple[Int, Float, Float]:
    """Bucket index, fraction inside it and log quantile, for ranks p (U, M) of prefixes (U, K).

    ``cum`` is the cumulative count over buckets, ``pooled`` the per-bucket count, ``n`` the total.
    Rows with n == 0 give NaN.
    """
    rank = p * n[:, None]
    # One searchsorted over all rows: offsetting row i by i * (max count + 1) keeps rows apart and
    # each row non-decreasing, so the flat search finds the first bucket with cum >= rank per row.
    rows, width = cum.shape
    step = float(n.max(initial=0.0)) + 1.0
    offset = np.arange(rows, dtype=np.float64)[:, None] * step
    flat = np.searchsorted((cum + offset).ravel(), (rank + offset).ravel(), side="left").reshape(rank.shape)
    k = np.minimum(flat - np.arange(rows)[:, None] * width, width - 1)
    c_here = np.take_along_axis(pooled, k, axis=1)
    c_prev = np.take_along_axis(cum, k, axis=1) - c_here
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.clip((rank - c_prev) / c_here, 0.0, 1.0)
    log_q = edges.lower[k] + frac * (edges.upper[k] - edges.lower[k])
    empty = n[:, None] <= 0
    return k, np.where(empty, 0.0, frac), np.where(empty, np.nan, log_q)


def profile_weights(n_c: Float, n_b: Float) -> tuple[Float, Float]:
    """Per-block weights (candidate, baseline) that put both arms on one time profile.

    omega_j = n_cj n_bj / (n_cj + n_bj) (half the harmonic mean of the arms' counts: the precision of
    a block's contrast), and arm a's block j is weighted by omega_j / n_aj. While the candidate is
    the small arm its blocks keep nearly equal weights and the baseline's are rescaled to the
    candidate's profile; at a 50/50 split both are unweighted. Blocks where an arm has no data get
    weight 0 in both arms. The weights depend on block j alone, so prefixes (looks) stay causal."""
    with np.errstate(divide="ignore", invalid="ignore"):
        omega = n_c * n_b / (n_c + n_b)
        w_c = np.where(n_c > 0, omega / n_c, 0.0)
        w_b = np.where(n_b > 0, omega / n_b, 0.0)
    both = (n_c > 0) & (n_b > 0)
    return np.where(both, w_c, 0.0), np.where(both, w_b, 0.0)


@dataclass(frozen=True)
class Pooled:
    """One arm's bucket counts pooled over every prefix of the used blocks (computed once, shared by
    all quantiles of the arm), optionally weighted per block."""

    counts: Float  # (U, K) per block, weighted
    block_below: Float  # (U, K) per block: weighted observations in buckets below k
    pooled: Float  # (U, K) per prefix
    cum: Float  # (U, K) per prefix, cumulative over buckets
    n: Float  # (U,) per prefix: weighted total
    n_raw: Float  # (U,) per prefix: observations
    n_eff: Float  # (U,) per prefix: Kish's effective sample size (= n_raw without weights)

    @classmethod
    def of(cls, counts: Float, weights: Float | None = None) -> Pooled:
        raw = counts.sum(axis=1)
        w = np.ones(counts.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
        weighted = counts * w[:, None]
        pooled = np.cumsum(weighted, axis=0)
        cum = np.cumsum(pooled, axis=1)
        block_cum = np.cumsum(weighted, axis=1)
        block_below = block_cum - weighted
        n = cum[:, -1]
        with np.errstate(divide="ignore", invalid="ignore"):
            n_eff = np.where(n > 0, n * n / np.cumsum(w * w * raw), 0.0)
        return cls(weighted, block_below, pooled, cum, n, np.cumsum(raw), n_eff)


@dataclass(frozen=True)
class ArmQuantile:
    """One arm's p-quantile over prefixes, with what the variance terms need."""

    log_q: Float  # (U,)
    k: Int  # bucket holding the quantile
    frac: Float  # position inside that bucket
    slope: Float  # d log Q / dp around p
    var_rank: Float  # term (a), floored
    n: Float  # weighted total of the prefix (the influence's denominator)


def arm_quantile(arm: Pooled, p: float, edges: Edges) -> ArmQuantile:
    """The p-quantile of one arm for every prefix; the rank term uses the effective sample size."""
    n = arm.n_eff
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.sqrt(p * (1.0 - p) / n)
        half = 0.5 / n
    p_lo = np.clip(p - s, half, p)
    p_hi = np.clip(p + s, p, 1.0 - half)
    ranks = np.stack((np.full_like(n, p), p_lo, p_hi), axis=1)
    k, frac, log_q = locate(arm.cum, arm.pooled, arm.n, ranks, edges)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (log_q[:, 2] - log_q[:, 1]) / (p_hi - p_lo)
        var_a = (slope * s) ** 2
        width = edges.upper[k[:, 0]] - edges.lower[k[:, 0]]
        floor = width**2 / (12.0 * n * (1.0 - p))
    var_a = np.where(np.isfinite(var_a), np.maximum(var_a, floor), np.inf)
    return ArmQuantile(log_q[:, 0], k[:, 0], frac[:, 0], slope, var_a, arm.n)


def _influence(arm: Pooled, q: ArmQuantile, p: float, first: int = 0) -> Float:
    """(blocks, prefixes first..): each block's first-order effect on the prefix's log quantile."""
    k, frac, scale = q.k[first:], q.frac[first:], (q.slope / q.n)[first:]
    under_edge = arm.block_below[:, k] + arm.counts[:, k] * frac[None, :]
    per_block = arm.block_below[:, -1] + arm.counts[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(-(under_edge - p * per_block[:, None]) * scale[None, :], dtype=np.float64)


@dataclass(frozen=True)
class RatioTrack:
    """log(candidate quantile / baseline quantile) over prefixes, its variance and data sufficiency."""

    log_ratio: Float
    variance: Float
    var_rank: Float
    var_block: Float
    tail: Float  # the smaller arm's observation count above the quantile
    n_candidate: Float
    df: Float  # equivalent degrees of freedom of the HAC block variance


def ratio_track(candidate: Pooled, baseline: Pooled, p: float, edges: Edges, *, first: int = 0) -> RatioTrack:
    """The quantile log-ratio for every prefix of the used blocks (arms paired by block).

    The block term is computed for prefixes ``first`` onward only (earlier ones get an infinite
    variance: no claim rests on them). Each prefix's value depends on its own blocks alone, so a
    controller that reads only its latest look passes ``first`` = that prefix and gets the same
    numbers as the full table's last row in O(J L) instead of O(J^2 L): at 720 blocks the full
    table's (blocks x prefixes) influence matrix is what made a look cost a few hundred ms."""
    arm_c = arm_quantile(candidate, p, edges)
    arm_b = arm_quantile(baseline, p, edges)
    blocks = candidate.counts.shape[0]
    # At least two prefixes: numpy sums a one-column matrix pairwise but a wider one row by row, and
    # row by row is how the full table sums, so the latest look comes out bit for bit the same.
    first = min(max(first, 0), max(blocks - 2, 0))
    u = _influence(candidate, arm_c, p, first) - _influence(baseline, arm_b, p, first)
    prefix = np.arange(first, blocks)
    mask = np.arange(blocks)[:, None] <= prefix[None, :]  # mask[i, m]: block i is in prefix first + m
    j = (prefix + 1).astype(np.float64)
    u = np.where(mask, u, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = u.sum(axis=0) / j
    centred = np.where(mask, u - mean[None, :], 0.0)  # centred within each prefix
    lags = range(hac.max_lag(blocks) + 1)
    gammas = np.stack([(centred[lag:] * centred[: blocks - lag]).sum(axis=0) for lag in lags])
    var_block = np.concatenate((np.full(first, np.inf), hac.combine(gammas, prefix + 1)))
    var_rank = arm_c.var_rank + arm_b.var_rank
    variance = np.fmax(var_rank, var_block)
    tail = np.minimum(candidate.n_raw, baseline.n_raw) * (1.0 - p)
    df = hac.degrees_of_freedom(np.arange(1, blocks + 1))
    return RatioTrack(arm_c.log_q - arm_b.log_q, variance, var_rank, var_block, tail, candidate.n_raw, df)


def max_growth(candidate: Pooled, baseline: Pooled, edges: Edges, *, min_count: float = 20.0) -> Float:
    """Largest log bucket growth over the p50..p99.9 range of either arm, for every prefix.

    The top of the range is lowered to the rank with at least 5 observations above it while data
    are scarce, so one early outlier does not condemn the buckets. NaN while an arm has fewer than
    ``min_count`` observations.
    """
    rows, width = candidate.cum.shape
    low = np.full(rows, width, dtype=np.int64)
    high = np.full(rows, -1, dtype=np.int64)
    too_few = np.zeros(rows, dtype=np.bool_)
    for arm in (candidate, baseline):
        too_few |= arm.n_raw < min_count
        with np.errstate(divide="ignore", invalid="ignore"):
            top = np.clip(1.0 - 5.0 / arm.n_eff, 0.5, 0.999)
        ranks = np.stack((np.full_like(arm.n, 0.5), np.where(np.isfinite(top), top, 0.5)), axis=1)
        k, _, _ = locate(arm.cum, arm.pooled, arm.n, ranks, edges)
        low = np.minimum(low, k[:, 0])
        high = np.maximum(high, k[:, 1])
    index = np.arange(width)[None, :]
    inside = (index >= low[:, None]) & (index <= high[:, None])
    result = np.where(inside, edges.growth[None, :], -np.inf).max(axis=1)
    return np.where(too_few, np.nan, result)


def prometheus_quantile(counts: Float, bounds: Float, p: float | Float) -> Float:
    """histogram_quantile(p, ...) of Prometheus for each row of ``counts`` (..., K): linear
    interpolation inside the bucket, 0 as the first bucket's lower edge, and the last finite bound
    when the rank falls into +Inf. NaN where a row has no observations. ``p`` may vary per row."""
    cum = np.cumsum(counts, axis=-1)
    n = cum[..., -1]
    rank = p * n
    k = (cum < rank[..., None]).sum(axis=-1)
    k = np.minimum(k, counts.shape[-1] - 1)
    upper = np.concatenate((bounds, [bounds[-1]]))
    lower = np.concatenate(([0.0], bounds))
    below = (
        np.take_along_axis(cum, k[..., None], axis=-1)[..., 0]
        - np.take_along_axis(counts, k[..., None], axis=-1)[..., 0]
    )
    here = np.take_along_axis(counts, k[..., None], axis=-1)[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.clip((rank - below) / here, 0.0, 1.0)
    value = lower[k] + frac * (upper[k] - lower[k])
    value = np.where(k == counts.shape[-1] - 1, bounds[-1], value)
    return np.where(n > 0, value, np.nan)
