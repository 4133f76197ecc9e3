"""The peers' judges, re-implemented fairly on the benchmark's simulated data (p99 latency only, as they
judge it).

All of them read the p99 the way they would from Prometheus, with ``histogram_quantile`` (linear
interpolation inside a bucket), except naive-z, and test the same target: candidate p99 <= 0.6 x
baseline p99.

* kayenta-fixed: per-minute p99 series of each arm, the baseline's read from an equal-size sample
  of its requests (Kayenta's advice: a baseline deployment of the canary's size, so both per-minute
  quantiles have the same small-sample bias); at 60 minutes a one-sided Mann-Whitney test (alpha
  0.01) of candidate < 0.6 x baseline; promote if significant, else roll back. One look, as the
  test assumes.
* kayenta-rejudged: the same test re-run every 10 minutes on the growing series (what people do
  with Kayenta in a long canary): promote when significant, roll back when the mirrored test
  (candidate > 0.6 x baseline) is significant, roll back at the time limit.
* flagger: a check every minute through the whole ramp (every step until the last one is done),
  p99_c <= 0.6 x p99_b (Flagger's metric threshold, given the baseline for fairness); a minute
  without data fails the check; roll back at 5 failed checks (its failed-checks threshold), promote
  when the ramp completes.
* naive-z: the judge's own p99 estimate and variance (common time profile, HAC), with the
  fixed-horizon one-sided 1.645 each way, from ``minBlocks`` on: promote or roll back at the first
  crossing. Same data, same estimator, same warm-up: the table isolates what the anytime boundary
  buys.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from ferrocanary.bench import sim
from ferrocanary.judge import looks, quantiles, tracks
from ferrocanary.model.analysis import KpiKind

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


def ramp_minutes(scenario: sim.Scenario) -> int:
    """Minutes until the last traffic step has run its course (Flagger promotes after that)."""
    return min(scenario.minutes, len(scenario.steps) * scenario.step_minutes)


def flagger(p99: Float, target: float, *, threshold: int = 5, checks: int = 40) -> tuple[Int, Int]:
    """Flagger-style per-minute threshold checks for ``checks`` minutes (the whole ramp)."""
    with np.errstate(invalid="ignore"):
        ok = p99[:, :checks, 1] <= target * p99[:, :checks, 0]  # NaN compares False: a failed check
    failures = np.cumsum(~ok, axis=1)
    hit = failures >= threshold
    rolled = hit.any(axis=1)
    first = np.argmax(hit, axis=1)
    decision = np.where(rolled, ROLLBACK, PROMOTE).astype(np.int64)
    minute = np.where(rolled, first + 1, checks).astype(np.int64)
    return decision, minute


def equal_size_p99(batch: sim.Batch, rng: np.random.Generator) -> Float:
    """(runs, J, 2) per-minute p99, the baseline's from a sample of its requests as large as the
    candidate's (binomial thinning of each bucket, so the sample size matches on average)."""
    n_c = batch.counts[..., 1, :].sum(axis=-1)
    n_b = batch.counts[..., 0, :].sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = np.clip(np.where(n_b > 0, n_c / n_b, 0.0), 0.0, 1.0)
    thinned = rng.binomial(batch.counts[..., 0, :].astype(np.int64), keep[..., None]).astype(np.float64)
    counts = np.stack((thinned, batch.counts[..., 1, :]), axis=-2)
    return quantiles.prometheus_quantile(counts, batch.bounds, 0.99)


def naive_z(table: looks.Looks, target: float, *, z: float = 1.645) -> tuple[int, int | None]:
    """(code, block index) of the first look at which a fixed-horizon one-sided z-test on the judge's
    own p99 estimate and variance rejects, once the judge itself would read the KPI (minBlocks and
    tail counts met); (CONTINUE, None) if none does in this table."""
    track = next(t for t in table.kpis if t.kind == KpiKind.LATENCY_QUANTILE.value)
    ready = track.reading != tracks.Read.NO_DATA
    with np.errstate(invalid="ignore"):
        sd = np.sqrt(track.variance)
        log_t = math.log(target)
        promote = ready & (track.estimate + z * sd < log_t)
        rollback = ready & (track.estimate - z * sd > log_t)
    decided = np.flatnonzero(promote | rollback)
    if decided.size == 0:
        return CONTINUE, None
    j = int(decided[0])
    return (PROMOTE if promote[j] else ROLLBACK), j
