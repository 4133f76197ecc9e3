"""Every look at once: each KPI's estimate, anytime interval and reading, and the combined decision,
for each block j as if the controller had looked right after it.

Because every statistic here is causal (block j's look uses blocks 0..j only), one vectorised pass
gives all looks: ``verdict.evaluate`` reads the last one, ``replay`` the first terminal one, and the
benchmark thousands of runs per second. The combination rule, in order of precedence:

    candidate memory fault                 -> ROLLBACK (hard rule, no statistics)
    latest block missing data              -> CONTINUE; 3 in a row -> HOLD (at the time limit: INCONCLUSIVE)
    sample-ratio mismatch                  -> INVALID
    guard rail breached (harm)             -> ROLLBACK
    buckets too coarse for the quantiles   -> INVALID (never promote on interpolation bias)
    any KPI MISS (Bonferroni over KPIs)    -> ROLLBACK
    all KPIs and all guards PASS           -> PROMOTE (intersection-union: guards non-inferior too)
    time limit reached                     -> INCONCLUSIVE
    all KPIs PASS, a guard not yet         -> CONTINUE (the reason names the guard holding it back)
    otherwise                              -> CONTINUE
Faults come first on purpose: a crash that was observed must roll back even if another signal is late.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from ferrocanary.judge import blocks, counts, quantiles, tracks
from ferrocanary.model.analysis import AnalysisSettings, GuardKind, KpiKind

Float = NDArray[np.float64]
Int = NDArray[np.int64]
Bool = NDArray[np.bool_]


class Code(IntEnum):
    """Decision codes per look (mirrors model.decisions.Decision)."""

    CONTINUE = 0
    HOLD = 1
    PROMOTE = 2
    ROLLBACK = 3
    INVALID = 4
    INCONCLUSIVE = 5


TERMINAL_CODES = (Code.PROMOTE, Code.ROLLBACK, Code.INVALID, Code.INCONCLUSIVE)


class Cause(IntEnum):
    """Which rule produced a look's decision (drives the reason sentence)."""

    NO_BLOCKS = 0
    FAULT = 1
    MISSING = 2
    SRM = 3
    GUARD = 4
    BUCKETS = 5
    MISS = 6
    PASS = 7
    TIMEOUT = 8
    WAIT = 9
    GUARD_WAIT = 10  # every KPI passes; a guard's non-inferiority is not shown yet


@dataclass(frozen=True)
class Looks:
    """The decision at every look and everything the reasons need."""

    decision: Int
    cause: Int
    kpis: tuple[tracks.Track, ...]
    guards: tuple[tracks.Track, ...]
    srm_log_e: Float
    srm_threshold: float
    srm_mask: Bool  # the blocks the sample-ratio check reads
    faults: Float  # cumulative candidate faults
    pod_hours: Float  # cumulative candidate pod-hours
    growth: Float  # log of the largest bucket growth in the quantile range (NaN: not checked yet)
    missing_run: Int
    elapsed: Float
    usable: Int  # complete, post-warm-up blocks so far

    def first_terminal(self) -> int | None:
        terminal = np.isin(self.decision, [int(c) for c in TERMINAL_CODES])
        hits = np.flatnonzero(terminal)
        return int(hits[0]) if hits.size else None


def compute(data: blocks.BlockData, settings: AnalysisSettings, *, since: int = 0) -> Looks:
    """All looks of one analysis; with ``since``, only looks ``since`` onward are exact.

    A look's row depends on blocks 0..j alone, so the controller, which acts on its latest look,
    passes ``since`` = that look and skips the quadratic part of recomputing every past one; looks
    before ``since`` then lack the quantile KPIs' statistics (read as no data, never a claim)."""
    n = data.n_blocks
    ctx = tracks.Context.of(data, settings, since=since)
    kpis = tuple(tracks.kpi_track(ctx, k) for k in settings.kpis)
    guards = tuple(tracks.guard_track(ctx, g) for g in settings.guards)
    faults, pod_hours = tracks.fault_totals(data)
    usable = tracks.count(~ctx.warm & ~data.any_missing())

    # Sample-ratio mismatch: requests per arm against the configured split, two-sided with the spec's
    # tolerance band (counts.log_e_split_deviation), on every block
    # past its warm-up. While a new weight propagates to the data plane the split is in transit, so a
    # mismatch there says nothing about the routing (seen live: nginx picking up a route change).
    srm_mask = ~ctx.warm & ~data.lacks("requests") & (data.weight > 0) & (data.weight < 100)
    srm_log_e = tracks.expand(
        counts.log_e_split_deviation(
            data.candidate.requests[srm_mask],
            data.baseline.requests[srm_mask],
            data.weight[srm_mask],
            100.0 - data.weight[srm_mask],
            settings.sample_ratio_tolerance,
        ),
        tracks.count(srm_mask),
        0.0,
    )
    srm_threshold = math.log(1.0 / (1.0 - settings.guard_confidence))

    has_quantile = any(k.kind is KpiKind.LATENCY_QUANTILE for k in settings.kpis) or any(
        g.kind is GuardKind.LATENCY_QUANTILE for g in settings.guards
    )
    growth = np.full(n, np.nan)
    if has_quantile and ctx.pooled_c.n.shape[0] > 0:
        growth = tracks.expand(
            quantiles.max_growth(ctx.pooled_c, ctx.pooled_b, ctx.edges), ctx.latency_used, np.nan
        )
    # 0.1% slack: bucket bounds are usually written with a few significant digits.
    coarse = np.nan_to_num(growth, nan=0.0) > math.log(settings.max_bucket_growth) + 1e-3

    run = blocks.missing_run(data)
    elapsed = blocks.elapsed(data)
    timeout = elapsed >= settings.max_duration_seconds - 1e-9

    fault_miss = np.zeros(n, dtype=np.bool_)
    any_miss = np.zeros(n, dtype=np.bool_)
    all_pass = usable >= settings.min_blocks
    for t in kpis:
        if t.statistical:
            any_miss |= t.reading == tracks.Read.MISS
            all_pass &= t.reading == tracks.Read.PASS
        else:
            fault_miss |= t.reading == tracks.Read.MISS
    guard_miss = np.zeros(n, dtype=np.bool_)
    guard_pass = np.ones(n, dtype=np.bool_)
    for t in guards:
        guard_miss |= t.reading == tracks.Read.MISS
        guard_pass &= t.reading == tracks.Read.PASS

    rules = [
        (fault_miss, Code.ROLLBACK, Cause.FAULT),
        ((run >= 3) & ~timeout, Code.HOLD, Cause.MISSING),
        ((run > 0) & timeout, Code.INCONCLUSIVE, Cause.TIMEOUT),
        (run > 0, Code.CONTINUE, Cause.MISSING),
        (srm_log_e >= srm_threshold, Code.INVALID, Cause.SRM),
        (guard_miss, Code.ROLLBACK, Cause.GUARD),
        (coarse, Code.INVALID, Cause.BUCKETS),
        (any_miss, Code.ROLLBACK, Cause.MISS),
        (all_pass & guard_pass, Code.PROMOTE, Cause.PASS),
        (timeout, Code.INCONCLUSIVE, Cause.TIMEOUT),
        (all_pass, Code.CONTINUE, Cause.GUARD_WAIT),
    ]
    conditions = [c for c, _, _ in rules]
    decision = np.select(conditions, [int(d) for _, d, _ in rules], default=int(Code.CONTINUE))
    cause = np.select(conditions, [int(c) for _, _, c in rules], default=int(Cause.WAIT))
    return Looks(
        decision=decision.astype(np.int64),
        cause=cause.astype(np.int64),
        kpis=kpis,
        guards=guards,
        srm_log_e=srm_log_e,
        srm_threshold=srm_threshold,
        srm_mask=srm_mask,
        faults=faults,
        pod_hours=pod_hours,
        growth=growth,
        missing_run=run,
        elapsed=elapsed,
        usable=usable,
    )
