"""Serial-correlation-robust (HAC) variance of a sum of per-block influence values, declared in advance.

Blocks are not independent: load, caches, GC and dependencies drift over minutes, so the sum of
squared influences (the independent-blocks variance) is too small when neighbouring blocks move
together. Newey-West with the Bartlett kernel adds the autocovariances up to a bandwidth L:

    V = c(J, L) (gamma_0 + 2 sum_{l=1..L} k_l gamma_l),   k_l = 1 - l/(L+1),   gamma_l = sum_i u_i u_(i-l)

The influences sum to zero within a look, which biases every gamma_l down by about gamma_0 / J; for
independent blocks E[gamma_0 + 2 sum k_l gamma_l] = sigma^2 (J - 1 - 2 sum_l k_l (J - l)/J), so
c(J, L) = J / (J - 1 - 2 sum_l k_l (J - l)/J) makes V unbiased there (it is J/(J-1) for L = 0, the
textbook correction the independent-blocks variance used).

The bandwidth grows with the number of blocks only, L(J) = ceil(J^0.7) (so L/J -> 0 and the
estimator is consistent, and nothing in the data chooses it: an earlier design switched to 5-block
groups when the lag-1 autocorrelation crossed 0.2, a pre-test redone at every look that is not
time-uniform and made the multiplier jump). The exponent is larger than the textbook 1/3 because
canaries are short and minutes are strongly correlated: with each arm's latency noise AR(1) at phi
0.8 (long-run variance 9x the per-block one) the p99 boundary was promoted 12.5% of the time with
J^(1/3), 8% with J^(1/2) and 6% with J^0.6 at 100 rps (200 runs each) under the two-sided boundary.
The one-sided boundary (confseq), which spends alpha once instead of alpha/2, exposed the rest: with
J^0.6 the full bench promoted 7.8% of 1,000 such runs (bound 6.4%), with J^0.7 4.3% (1,000 runs,
seed 21), at the price of about 4 minutes on the median time to promote a 0.40 candidate at 20 rps
(40 -> 44 in the quick bench) and 1 at 100 rps (docs/recording.md).

The Bartlett weights keep V non-negative. Its Student-t calibration uses the kernel's equivalent
degrees of freedom, 3J / (2(L+1)) (Sun, Phillips and Jin, Econometrica 2008), capped at J - 1,
because a HAC variance is estimated from fewer effective pieces than J.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import NDArray

Float = NDArray[np.float64]

EXPONENT = 0.7  # L(J) = ceil(J^EXPONENT), fixed in advance (see above for why not 1/3)


@functools.lru_cache(maxsize=8)
def _tables(size: int) -> tuple[NDArray[np.int64], Float, Float]:
    """(L, equivalent df, c) for J = 0..size-1, computed once: the judge asks for them at every look
    of every track with integer block counts, and the formulas below cost more than a lookup."""
    j = np.arange(size, dtype=np.float64)
    tables = (_bandwidth(j), _degrees_of_freedom(j), _correction(j))
    for t in tables:
        t.setflags(write=False)
    return tables


def _lookup(blocks: NDArray[np.int64] | NDArray[np.float64], which: int) -> NDArray[np.generic] | None:
    """The cached value for an integer array of block counts (None for floats or negative counts)."""
    j = np.asarray(blocks)
    if j.dtype.kind not in "iu" or j.size == 0 or int(j.min()) < 0:
        return None
    size = 1 << max(8, int(j.max()).bit_length())  # 256, 512, ...: few distinct tables
    table: NDArray[np.generic] = _tables(size)[which]
    return np.asarray(table[j])


def bandwidth(blocks: NDArray[np.int64] | NDArray[np.float64]) -> NDArray[np.int64]:
    """L(J) = ceil(J^0.7) for J >= 2 (0 below), at most J - 1: 2 blocks -> 1, 20 -> 9, 64 -> 19, 120 -> 29."""
    cached = _lookup(blocks, 0)
    return _bandwidth(blocks) if cached is None else np.asarray(cached, dtype=np.int64)


def _bandwidth(blocks: NDArray[np.int64] | NDArray[np.float64]) -> NDArray[np.int64]:
    j = np.asarray(blocks, dtype=np.float64)
    lag = np.ceil(np.maximum(j, 0.0) ** EXPONENT - 1e-9)
    return np.where(j >= 2, np.minimum(lag, np.maximum(j - 1, 0)), 0).astype(np.int64)


def max_lag(blocks: int) -> int:
    """The largest bandwidth any prefix of ``blocks`` blocks uses."""
    return int(bandwidth(np.array([blocks]))[0]) if blocks > 0 else 0


def degrees_of_freedom(blocks: NDArray[np.int64] | NDArray[np.float64]) -> Float:
    """Equivalent degrees of freedom of the Bartlett HAC variance, min(J - 1, 3J / (2(L + 1)))."""
    cached = _lookup(blocks, 1)
    return _degrees_of_freedom(blocks) if cached is None else np.asarray(cached, dtype=np.float64)


def _degrees_of_freedom(blocks: NDArray[np.int64] | NDArray[np.float64]) -> Float:
    j = np.asarray(blocks, dtype=np.float64)
    lag = _bandwidth(j).astype(np.float64)
    return np.asarray(np.minimum(j - 1.0, 1.5 * j / (lag + 1.0)), dtype=np.float64)


def correction(blocks: NDArray[np.int64] | NDArray[np.float64]) -> Float:
    """c(J, L(J)): the small-sample factor that makes V unbiased for independent blocks."""
    cached = _lookup(blocks, 2)
    return _correction(blocks) if cached is None else np.asarray(cached, dtype=np.float64)


def _correction(blocks: NDArray[np.int64] | NDArray[np.float64]) -> Float:
    j = np.asarray(blocks, dtype=np.float64)
    lag = _bandwidth(j).astype(np.float64)
    top = int(lag.max(initial=0.0))
    ls = np.arange(1, top + 1, dtype=np.float64)[:, None]
    k = np.clip(1.0 - ls / (lag[None, :] + 1.0), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        loss = 2.0 * (k * (j[None, :] - ls) / j[None, :]).sum(axis=0) if top else np.zeros_like(j)
        factor = j / (j - 1.0 - loss)
    return np.asarray(np.where(j > 1, factor, np.inf), dtype=np.float64)


def combine(gammas: Float, blocks: NDArray[np.int64] | NDArray[np.float64]) -> Float:
    """V per prefix from its autocovariance sums.

    ``gammas`` is (L_max + 1, prefixes): row l holds sum_i u_i u_(i-l) over the prefix. Each prefix
    uses its own bandwidth L(J); lags above it get weight 0."""
    j = np.asarray(blocks, dtype=np.float64)
    lag = bandwidth(blocks).astype(np.float64)
    lags = np.arange(gammas.shape[0], dtype=np.float64)[:, None]
    weight = np.clip(1.0 - lags / (lag[None, :] + 1.0), 0.0, 1.0)
    weight[1:] *= 2.0
    total = (weight * gammas).sum(axis=0)
    with np.errstate(invalid="ignore"):
        variance = np.maximum(total, 0.0) * correction(blocks)
    return np.asarray(np.where(j > 1, variance, np.inf), dtype=np.float64)
