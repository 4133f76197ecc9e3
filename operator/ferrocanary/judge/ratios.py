"""Ratio-of-sums KPIs (requests per CPU-second, cost per request) with a paired delta-method variance.

theta_a = sum(numerator_a) / sum(denominator_a) per arm; d = log theta_c - log theta_b. Linearising
(Deng, Knoblich, Lu, KDD 2018) block j contributes
    u_j = (N_cj/mean N_c - D_cj/mean D_c) - (N_bj/mean N_b - D_bj/mean D_b),   V = var(u) / J,
paired per block so that load swings common to both arms cancel. If the lag-1 autocorrelation of u
exceeds 0.2, the blocks are summed into 5-block groups (5 minutes by default) and V is recomputed
on the groups, because autocorrelated blocks make var(u)/J too small.

Every prefix (look) is computed at once: with x_j = (N_cj, D_cj, N_bj, D_bj) and the look's
weights w = (1/sum N_c, -1/sum D_c, -1/sum N_b, 1/sum D_b), sum_j u_j^2 / J^2 = w' (sum_j x_j x_j') w,
so prefix sums of the outer products x_j x_j' (and of x_j x_(j-1)' for the autocorrelation) give
the variance of every look in O(J).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Float = NDArray[np.float64]

AUTOCORRELATION_LIMIT = 0.2
GROUP = 5


@dataclass(frozen=True)
class RatioOfSums:
    """Per prefix: log ratio (candidate over baseline), its variance and the lag-1 autocorrelation."""

    log_ratio: Float
    variance: Float
    autocorrelation: Float
    grouped: NDArray[np.bool_]  # True where the 5-block variance was used
    df: Float  # degrees of freedom of the variance estimate (blocks or groups, minus 1)


def _quadratic(weights: Float, gram: Float) -> Float:
    return np.asarray(np.einsum("ua,uab,ub->u", weights, gram, weights), dtype=np.float64)


def track(num_c: Float, den_c: Float, num_b: Float, den_b: Float) -> RatioOfSums:
    """The log ratio of (sum num / sum den), candidate over baseline, for every prefix of the blocks."""
    x = np.stack((num_c, den_c, num_b, den_b), axis=1)
    blocks = x.shape[0]
    sums = np.cumsum(x, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log(sums[:, 0] / sums[:, 1]) - np.log(sums[:, 2] / sums[:, 3])
        weights = np.stack((1 / sums[:, 0], -1 / sums[:, 1], -1 / sums[:, 2], 1 / sums[:, 3]), axis=1)
    weights = np.where(np.isfinite(weights), weights, 0.0)
    j = np.arange(1, blocks + 1, dtype=np.float64)

    outer = x[:, :, None] * x[:, None, :]
    gram = np.cumsum(outer, axis=0)
    squares = np.maximum(_quadratic(weights, gram), 0.0)
    lagged = np.zeros_like(outer)
    lagged[1:] = x[1:, :, None] * x[:-1, None, :]
    lag_products = _quadratic(weights, np.cumsum(lagged, axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = squares * j / (j - 1.0)
        autocorrelation = np.where(squares > 0, lag_products / squares, 0.0)

    # Group sums of complete 5-block groups, then add the partial group of each prefix.
    full = blocks // GROUP
    grouped_x = x[: full * GROUP].reshape(full, GROUP, 4).sum(axis=1)
    group_gram = np.concatenate(
        (np.zeros((1, 4, 4)), np.cumsum(grouped_x[:, :, None] * grouped_x[:, None, :], axis=0)), axis=0
    )
    complete = (np.arange(1, blocks + 1) // GROUP).astype(np.int64)
    prefix_sums = np.concatenate((np.zeros((1, 4)), sums), axis=0)
    partial = sums - prefix_sums[complete * GROUP]
    gram_g = group_gram[complete] + partial[:, :, None] * partial[:, None, :]
    groups = complete + (np.arange(1, blocks + 1) % GROUP > 0)
    squares_g = np.maximum(_quadratic(weights, gram_g), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        variance_g = np.where(groups > 1, squares_g * groups / (groups - 1.0), np.inf)

    use_groups = autocorrelation > AUTOCORRELATION_LIMIT
    variance = np.where(use_groups, variance_g, variance)
    variance = np.where(j > 1, variance, np.inf)
    df = np.where(use_groups, groups - 1.0, j - 1.0)
    return RatioOfSums(log_ratio, variance, autocorrelation, use_groups, df)
