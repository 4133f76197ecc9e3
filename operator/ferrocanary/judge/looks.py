"""Every look at once: each KPI's estimate, anytime interval and reading, and the combined decision,
for each block j as if the controller had looked right after it.

Because every statistic here is causal (block j's look uses blocks 0..j only), one vectorised pass
gives all looks: ``verdict.evaluate`` reads the last one, ``replay`` the first terminal one, and the
benchmark thousands of runs per second. The combination rule, in order of precedence:

    candidate memory fault                 -> ROLLBACK (hard rule, no statistics)
    latest block missing data              -> CONTINUE; 3 in a row -> HOLD (at the time limit: INCONCLUSIVE)
    sample-ratio mismatch                  -> INVALID
    guard rail breached                    -> ROLLBACK
    buckets too coarse for the quantiles   -> INVALID (never promote on interpolation bias)
    any KPI MISS (Bonferroni over KPIs)    -> ROLLBACK
    all KPIs PASS (intersection-union)     -> PROMOTE
    time limit reached                     -> INCONCLUSIVE
    otherwise                              -> CONTINUE
Faults come first on purpose: a crash that was observed must roll back even if another signal is late.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from ferrocanary.judge import blocks, confseq, counts, quantiles, ratios
from ferrocanary.model.analysis import AnalysisSettings, Direction, GuardKind, KpiKind

Float = NDArray[np.float64]
Int = NDArray[np.int64]
Bool = NDArray[np.bool_]

GIB = float(2**30)


class Code(IntEnum):
    """Decision codes per look (mirrors model.decisions.Decision)."""

    CONTINUE = 0
    HOLD = 1
    PROMOTE = 2
    ROLLBACK = 3
    INVALID = 4
    INCONCLUSIVE = 5


TERMINAL_CODES = (Code.PROMOTE, Code.ROLLBACK, Code.INVALID, Code.INCONCLUSIVE)


class Read(IntEnum):
    """Reading codes per look (mirrors model.decisions.Reading)."""

    NO_DATA = 0
    OPEN = 1
    PASS = 2
    MISS = 3


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


@dataclass(frozen=True)
class Track:
    """One KPI or guard rail over looks. Log scale for ratios; faults: counts."""

    name: str
    kind: str
    target: float  # ratio scale (faults: allowed count)
    direction: Direction
    estimate: Float
    variance: Float
    lower: Float  # the reported (confidence-level) anytime interval
    upper: Float
    reading: Int
    used: Int  # blocks in the statistic at each look
    n_candidate: Float  # candidate observations (information proxy for the ETA)
    alpha_pass: float
    alpha_miss: float
    miss_lower: Float = field(default_factory=lambda: np.zeros(0))
    miss_upper: Float = field(default_factory=lambda: np.zeros(0))
    log_e: Float = field(default_factory=lambda: np.zeros(0))  # e-process guards
    threshold: float = math.inf  # e-process guards: log(1/alpha)


@dataclass(frozen=True)
class Looks:
    """The decision at every look and everything the reasons need."""

    decision: Int
    cause: Int
    kpis: tuple[Track, ...]
    guards: tuple[Track, ...]
    srm_log_e: Float
    srm_threshold: float
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


def _count(mask: Bool) -> Int:
    """Per look: how many blocks so far satisfy ``mask``."""
    return np.cumsum(mask, dtype=np.int64)


def _expand(values: Float, used: Int, fill: float) -> Float:
    """Per look from per prefix: look j sees the prefix of length used[j] (fill when 0)."""
    if values.size == 0:
        return np.full(used.shape[0], fill)
    index = np.maximum(used - 1, 0)
    return np.where(used > 0, values[index], fill)


def _ratio_reading(
    *,
    d: Float,
    var: Float,
    df: Float,
    used: Int,
    enough: Bool,
    settings: AnalysisSettings,
    target: float,
    higher: bool,
    a: float,
) -> tuple[Float, Float, Float, Float, Int]:
    """Anytime intervals at alpha (for PASS) and at the Bonferroni alpha a (for MISS), and the reading."""
    alpha = 1.0 - settings.confidence
    t_used = used * settings.interval_seconds
    sd = np.sqrt(var)
    horizon = settings.information_horizon_seconds
    half_pass = confseq.student(confseq.multiplier_at_time(t_used, horizon, alpha), df) * sd
    half_miss = confseq.student(confseq.multiplier_at_time(t_used, horizon, a), df) * sd
    log_t = math.log(target)
    lower, upper = d - half_pass, d + half_pass
    miss_lower, miss_upper = d - half_miss, d + half_miss
    if higher:
        passed, missed = lower > log_t, miss_upper < log_t
    else:
        passed, missed = upper < log_t, miss_lower > log_t
    reading = np.where(passed, Read.PASS, np.where(missed, Read.MISS, Read.OPEN))
    reading = np.where(enough & np.isfinite(d) & np.isfinite(var), reading, Read.NO_DATA)
    return lower, upper, miss_lower, miss_upper, reading.astype(np.int64)


def compute(data: blocks.BlockData, settings: AnalysisSettings) -> Looks:
    """All looks of one analysis."""
    n = data.n_blocks
    warm = blocks.warm(data, settings.warmup_seconds)
    base, cand = data.baseline, data.candidate
    alpha = 1.0 - settings.confidence
    stat_kinds = (KpiKind.LATENCY_QUANTILE, KpiKind.THROUGHPUT_PER_CPU, KpiKind.COST_PER_REQUEST)
    n_stat = max(1, sum(k.kind in stat_kinds for k in settings.kpis))
    alpha_miss = alpha / n_stat
    alpha_guard = (1.0 - settings.guard_confidence) / max(1, len(settings.guards))
    edges = quantiles.Edges.from_bounds(data.bounds)

    lat_mask = ~warm & ~data.lacks("requests", "latency")
    lat_used = _count(lat_mask)
    usable = _count(~warm & ~data.any_missing())
    pooled_c, pooled_b = (
        quantiles.Pooled.of(cand.counts[lat_mask]),
        quantiles.Pooled.of(base.counts[lat_mask]),
    )

    tracks: list[Track] = []
    faults = np.zeros(n)
    pod_hours = np.zeros(n)
    for kpi in settings.kpis:
        higher = kpi.direction is Direction.HIGHER
        if kpi.kind is KpiKind.MEMORY_FAULTS:
            has = ~data.missing[:, blocks.SIGNALS.index("faults")]
            faults = np.cumsum(np.where(has, cand.faults, 0.0))
            pod_hours = np.cumsum(np.where(has, cand.pods * data.interval / 3600.0, 0.0))
            reading = np.where(faults > kpi.target, Read.MISS, Read.PASS).astype(np.int64)
            nan = np.full(n, np.nan)
            tracks.append(
                Track(
                    name=kpi.name,
                    kind=kpi.kind.value,
                    target=kpi.target,
                    direction=kpi.direction,
                    estimate=faults,
                    variance=nan,
                    lower=nan,
                    upper=nan,
                    reading=reading,
                    used=_count(has),
                    n_candidate=nan,
                    alpha_pass=alpha,
                    alpha_miss=alpha,
                )
            )
            continue
        if kpi.kind is KpiKind.LATENCY_QUANTILE:
            assert kpi.quantile is not None
            qt = quantiles.ratio_track(pooled_c, pooled_b, kpi.quantile, edges)
            used = lat_used
            d, var = _expand(qt.log_ratio, used, np.nan), _expand(qt.variance, used, np.inf)
            df = _expand(qt.df, used, 0.0)
            tail = _expand(qt.tail, used, 0.0)
            enough = (used >= settings.min_blocks) & (tail >= settings.min_tail_count)
            n_c = _expand(qt.n_candidate, used, 0.0)
        else:
            needs = (
                ("requests", "cpu")
                if kpi.kind is KpiKind.THROUGHPUT_PER_CPU
                else ("requests", "cpu", "memory")
            )
            mask = ~warm & ~data.lacks(*needs)
            used = _count(mask)
            if kpi.kind is KpiKind.THROUGHPUT_PER_CPU:
                rt = ratios.track(cand.requests[mask], cand.cpu[mask], base.requests[mask], base.cpu[mask])
            else:
                pricing = settings.pricing
                per_mem = data.interval * pricing.memory_gib_hour / 3600.0 / GIB
                cost_c = cand.cpu * pricing.cpu_hour / 3600.0 + cand.memory * per_mem
                cost_b = base.cpu * pricing.cpu_hour / 3600.0 + base.memory * per_mem
                rt = ratios.track(cost_c[mask], cand.requests[mask], cost_b[mask], base.requests[mask])
            d, var = _expand(rt.log_ratio, used, np.nan), _expand(rt.variance, used, np.inf)
            df = _expand(rt.df, used, 0.0)
            enough = used >= settings.min_blocks
            n_c = np.cumsum(np.where(mask, cand.requests, 0.0))
        lower, upper, miss_lower, miss_upper, reading = _ratio_reading(
            d=d,
            var=var,
            df=df,
            used=used,
            enough=enough,
            settings=settings,
            target=kpi.target,
            higher=higher,
            a=alpha_miss,
        )
        tracks.append(
            Track(
                name=kpi.name,
                kind=kpi.kind.value,
                target=kpi.target,
                direction=kpi.direction,
                estimate=d,
                variance=var,
                lower=lower,
                upper=upper,
                reading=reading,
                used=used,
                n_candidate=n_c,
                alpha_pass=alpha,
                alpha_miss=alpha_miss,
                miss_lower=miss_lower,
                miss_upper=miss_upper,
            )
        )

    guard_tracks: list[Track] = []
    for guard in settings.guards:
        if guard.kind is GuardKind.ERROR_RATE:
            mask = ~warm & ~data.lacks("requests", "errors")
            used = _count(mask)
            ec, eb = cand.errors[mask], base.errors[mask]
            rc, rb = cand.requests[mask], base.requests[mask]
            log_e = _expand(counts.log_e_process(ec, eb, rc, rb, guard.max_ratio), used, 0.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = (np.cumsum(ec) / np.cumsum(rc)) / (np.cumsum(eb) / np.cumsum(rb))
                log_ratio = np.log(ratio)
            d = _expand(log_ratio, used, np.nan)
            threshold = math.log(1.0 / alpha_guard)
            reading = np.where(
                log_e >= threshold, Read.MISS, np.where(used > 0, Read.PASS, Read.NO_DATA)
            ).astype(np.int64)
            nan = np.full(n, np.nan)
            guard_tracks.append(
                Track(
                    name=guard.name,
                    kind=guard.kind.value,
                    target=guard.max_ratio,
                    direction=Direction.LOWER,
                    estimate=d,
                    variance=nan,
                    lower=nan,
                    upper=nan,
                    reading=reading,
                    used=used,
                    n_candidate=_expand(np.cumsum(rc), used, 0.0),
                    alpha_pass=alpha_guard,
                    alpha_miss=alpha_guard,
                    log_e=log_e,
                    threshold=threshold,
                )
            )
            continue
        assert guard.quantile is not None
        qt = quantiles.ratio_track(pooled_c, pooled_b, guard.quantile, edges)
        d, var = _expand(qt.log_ratio, lat_used, np.nan), _expand(qt.variance, lat_used, np.inf)
        df = _expand(qt.df, lat_used, 0.0)
        tail = _expand(qt.tail, lat_used, 0.0)
        enough = (lat_used >= settings.min_blocks) & (tail >= settings.min_tail_count)
        lower, upper, miss_lower, miss_upper, reading = _ratio_reading(
            d=d,
            var=var,
            df=df,
            used=lat_used,
            enough=enough,
            settings=settings,
            target=guard.max_ratio,
            higher=False,
            a=alpha_guard,
        )
        guard_tracks.append(
            Track(
                name=guard.name,
                kind=guard.kind.value,
                target=guard.max_ratio,
                direction=Direction.LOWER,
                estimate=d,
                variance=var,
                lower=miss_lower,  # a guard reports its own (guard-confidence) interval
                upper=miss_upper,
                reading=reading,
                used=lat_used,
                n_candidate=_expand(qt.n_candidate, lat_used, 0.0),
                alpha_pass=alpha_guard,
                alpha_miss=alpha_guard,
                miss_lower=miss_lower,
                miss_upper=miss_upper,
            )
        )
        del lower, upper

    # Sample-ratio mismatch: requests per arm against the configured split, two-sided, every block.
    srm_mask = ~data.lacks("requests") & (data.weight > 0) & (data.weight < 100)
    srm_used = _count(srm_mask)
    srm_log_e = _expand(
        counts.log_e_process(
            cand.requests[srm_mask],
            base.requests[srm_mask],
            data.weight[srm_mask],
            100.0 - data.weight[srm_mask],
            1.0,
            two_sided=True,
        ),
        srm_used,
        0.0,
    )
    srm_threshold = math.log(1.0 / (1.0 - settings.guard_confidence))

    has_quantile = any(k.kind is KpiKind.LATENCY_QUANTILE for k in settings.kpis) or any(
        g.kind is GuardKind.LATENCY_QUANTILE for g in settings.guards
    )
    if has_quantile and pooled_c.n.shape[0] > 0:
        growth = _expand(quantiles.max_growth(pooled_c, pooled_b, edges), lat_used, np.nan)
    else:
        growth = np.full(n, np.nan)
    # 0.1% slack: bucket bounds are usually written with a few significant digits.
    coarse = np.nan_to_num(growth, nan=0.0) > math.log(settings.max_bucket_growth) + 1e-3

    run = blocks.missing_run(data)
    elapsed = blocks.elapsed(data)
    timeout = elapsed >= settings.max_duration_seconds - 1e-9

    stat = [t for t in tracks if t.kind in {k.value for k in stat_kinds}]
    fault_tracks = [t for t in tracks if t.kind == KpiKind.MEMORY_FAULTS.value]
    fault_miss = np.zeros(n, dtype=np.bool_)
    for t in fault_tracks:
        fault_miss |= t.reading == Read.MISS
    guard_miss = np.zeros(n, dtype=np.bool_)
    for t in guard_tracks:
        guard_miss |= t.reading == Read.MISS
    any_miss = np.zeros(n, dtype=np.bool_)
    all_pass = usable >= settings.min_blocks
    for t in stat:
        any_miss |= t.reading == Read.MISS
        all_pass &= t.reading == Read.PASS
    srm = srm_log_e >= srm_threshold

    rules = [
        (fault_miss, Code.ROLLBACK, Cause.FAULT),
        ((run >= 3) & ~timeout, Code.HOLD, Cause.MISSING),
        ((run > 0) & timeout, Code.INCONCLUSIVE, Cause.TIMEOUT),
        (run > 0, Code.CONTINUE, Cause.MISSING),
        (srm, Code.INVALID, Cause.SRM),
        (guard_miss, Code.ROLLBACK, Cause.GUARD),
        (coarse, Code.INVALID, Cause.BUCKETS),
        (any_miss, Code.ROLLBACK, Cause.MISS),
        (all_pass, Code.PROMOTE, Cause.PASS),
        (timeout, Code.INCONCLUSIVE, Cause.TIMEOUT),
    ]
    conditions = [c for c, _, _ in rules]
    decision = np.select(conditions, [int(d) for _, d, _ in rules], default=int(Code.CONTINUE))
    cause = np.select(conditions, [int(c) for _, _, c in rules], default=int(Cause.WAIT))
    return Looks(
        decision=decision.astype(np.int64),
        cause=cause.astype(np.int64),
        kpis=tuple(tracks),
        guards=tuple(guard_tracks),
        srm_log_e=srm_log_e,
        srm_threshold=srm_threshold,
        faults=faults,
        pod_hours=pod_hours,
        growth=growth,
        missing_run=run,
        elapsed=elapsed,
        usable=usable,
    )
