"""The peers' judges, re-implemented on the benchmark's simulated data (p99 latency only, as they judge it).

All of them read the p99 the way they would from Prometheus, with ``histogram_quantile`` (linear
interpolation inside a bucket), and test the same target: candidate p99 <= 0.6 x baseline p99.

* kayenta-fixed: per-minute p99 series of each arm; at 60 minutes a one-sided Mann-Whitney test
  (alpha 0.01) of candidate < 0.6 x baseline; promote if significant, else roll back (Kayenta's
  canary fails unless its score passes). One look, as the test assumes.
* kayenta-rejudged: the same test re-run every 10 minutes on the growing series (what people do
  with Kayenta in a long canary): promote when significant, roll back when the mirrored test
  (candidate > 0.6 x baseline) is significant, roll back at the time limit.
* flagger: a check per minute, p99_c <= 0.6 x p99_b (Flagger's metric threshold, given the baseline
  for fairness); a minute without data fails the check; roll back at 5 failed checks, promote after
  10 checks.
* naive-z: every minute, a z-test on the pooled log p99 ratio with the rank-interval standard error
  and fixed-horizon critical values (one-sided 1.645 each way): promote or roll back at the first
  crossing. It is what a careful statistician would do once, done every minute.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from ferrocanary.bench import sim
from ferrocanary.judge import quantiles

Int = NDArray[np.int64]
Float = NDArray[np.float64]

METHODS = ("kayenta-fixed", "kayenta-rejudged", "flagger", "naive-z")

# Outcome codes shared with the ferrocanary rows (looks.Code values).
CONTINUE, PROMOTE, ROLLBACK, INCONCLUSIVE = 0, 2, 3, 5


def minute_p99(batch: sim.Batch) -> Float:
    """(runs, J, 2) per-minute p99 as Prometheus' histogram_quantile reports it."""
    return quantiles.prometheus_quantile(batch.counts, batch.bounds, 0.99)


def _mann_whitney(x: Float, y: Float, alternative: str) -> Float:
    """Row-wise one-sided p-values; rows with missing minutes drop them (as Kayenta does)."""
    clean = ~(np.isnan(x).any(axis=1) | np.isnan(y).any(axis=1))
    p = np.ones(x.shape[0])
    if clean.any():
        p[clean] = stats.mannwhitneyu(x[clean], y[clean], alternative=alternative, axis=1).pvalue
    for r in np.flatnonzero(~clean):
        xr, yr = x[r][~np.isnan(x[r])], y[r][~np.isnan(y[r])]
        if xr.size and yr.size:
            p[r] = float(stats.mannwhitneyu(xr, yr, alternative=alternative).pvalue)
    return p


def kayenta(p99: Float, target: float, *, looks: tuple[int, ...], alpha: float = 0.01) -> tuple[Int, Int]:
    """Decision code and minute per run for Mann-Whitney judgements at the given minutes."""
    runs = p99.shape[0]
    decision = np.full(runs, CONTINUE, dtype=np.int64)
    minute = np.zeros(runs, dtype=np.int64)
    for i, at in enumerate(looks):
        cand, base = p99[:, :at, 1], target * p99[:, :at, 0]
        open_ = decision == CONTINUE
        better = _mann_whitney(cand, base, "less") < alpha
        promote = open_ & better
        decision[promote], minute[promote] = PROMOTE, at
        if i == len(looks) - 1:
            rest = open_ & ~better
            decision[rest], minute[rest] = ROLLBACK, at
        else:
            worse = open_ & ~better & (_mann_whitney(cand, base, "greater") < alpha)
            decision[worse], minute[worse] = ROLLBACK, at
    return decision, minute


def flagger(p99: Float, target: float, *, threshold: int = 5, checks: int = 10) -> tuple[Int, Int]:
    """Flagger-style per-minute threshold checks."""
    with np.errstate(invalid="ignore"):
        ok = p99[:, :checks, 1] <= target * p99[:, :checks, 0]  # NaN compares False: a failed check
    failures = np.cumsum(~ok, axis=1)
    hit = failures >= threshold
    rolled = hit.any(axis=1)
    first = np.argmax(hit, axis=1)
    decision = np.where(rolled, ROLLBACK, PROMOTE).astype(np.int64)
    minute = np.where(rolled, first + 1, checks).astype(np.int64)
    return decision, minute


def naive_z(batch: sim.Batch, run: int, target: float, p: float = 0.99, z: float = 1.645) -> tuple[int, int]:
    """First minute at which a fixed-horizon one-sided z-test on the pooled log p99 ratio rejects."""
    pooled = np.cumsum(batch.counts[run], axis=0)  # (J, 2, K): every prefix of minutes
    n = pooled.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.sqrt(p * (1.0 - p) / n)
        p_lo, p_hi = np.clip(p - s, 0.5 / n, p), np.clip(p + s, p, 1.0 - 0.5 / n)
        log_q = np.log(quantiles.prometheus_quantile(pooled, batch.bounds, np.full_like(n, p)))
        spread = np.log(quantiles.prometheus_quantile(pooled, batch.bounds, p_hi)) - np.log(
            quantiles.prometheus_quantile(pooled, batch.bounds, p_lo)
        )
        se_arm = spread / (p_hi - p_lo) * s
        d = log_q[:, 1] - log_q[:, 0]
        se = np.sqrt(se_arm[:, 0] ** 2 + se_arm[:, 1] ** 2)
        log_t = math.log(target)
        promote = d + z * se < log_t
        rollback = d - z * se > log_t
    decided = np.flatnonzero(promote | rollback)
    if decided.size == 0:
        return INCONCLUSIVE, batch.weight.shape[0]
    j = int(decided[0])
    return (PROMOTE if promote[j] else ROLLBACK), j + 1
