"""Each KPI and guard rail followed over every look: estimate, anytime interval, reading.

A ``Track`` holds one value per look (block index j). Ratio KPIs live on the log scale; the memory
fault KPI counts faults. Which blocks feed which statistic (warm-up, missing signals) is decided
here, per signal: a block without CPU data still counts for latency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from ferrocanary.judge import blocks, confseq, counts, hac, quantiles, ratios
from ferrocanary.model.analysis import AnalysisSettings, Direction, GuardKind, GuardRail, KpiKind, KpiTarget

Float = NDArray[np.float64]
Int = NDArray[np.int64]
Bool = NDArray[np.bool_]

GIB = float(2**30)
STATISTICAL = frozenset({KpiKind.LATENCY_QUANTILE, KpiKind.THROUGHPUT_PER_CPU, KpiKind.COST_PER_REQUEST})


class Read(IntEnum):
    """Reading codes per look (mirrors model.decisions.Reading)."""

    NO_DATA = 0
    OPEN = 1
    PASS = 2
    MISS = 3


@dataclass(frozen=True)
class Track:
    """One KPI or guard rail over looks."""

    name: str
    kind: str
    target: float  # ratio scale (faults: allowed count)
    direction: Direction
    estimate: Float
    variance: Float
    lower: Float  # the reported anytime interval (confidence level; a guard: its own level)
    upper: Float
    reading: Int
    used: Int  # blocks in the statistic at each look
    n_candidate: Float  # candidate observations (information proxy for the ETA)
    alpha_pass: float
    alpha_miss: float
    miss_lower: Float = field(default_factory=lambda: np.zeros(0))
    miss_upper: Float = field(default_factory=lambda: np.zeros(0))
    log_e: Float = field(default_factory=lambda: np.zeros(0))  # e-process guards: harm
    threshold: float = math.inf  # e-process guards: log(1/alpha) of the harm test
    promote_below: float = math.nan  # guards: the non-inferiority bound a promotion needs (ratio scale)
    pass_log_e: Float = field(default_factory=lambda: np.zeros(0))  # e-process guards: non-inferiority
    pass_threshold: float = math.inf  # e-process guards: log(1/alpha) of the non-inferiority test
    floor: float = math.nan  # error-rate guard: the absolute non-inferiority floor (a rate)
    rho_pass: Float = field(default_factory=lambda: np.zeros(0))  # interval tracks: the mixture's rho
    rho_miss: Float = field(default_factory=lambda: np.zeros(0))  # per look (PASS and MISS claims)

    @property
    def is_guard(self) -> bool:
        return math.isfinite(self.promote_below)

    @property
    def statistical(self) -> bool:
        return self.kind in {k.value for k in STATISTICAL}


def count(mask: Bool) -> Int:
    """Per look: how many blocks so far satisfy ``mask``."""
    return np.cumsum(mask, dtype=np.int64)


def expand(values: Float, used: Int, fill: float) -> Float:
    """Per look from per prefix: look j sees the prefix of length used[j] (fill when 0)."""
    if values.size == 0:
        return np.full(used.shape[0], fill)
    return np.where(used > 0, values[np.maximum(used - 1, 0)], fill)


@dataclass(frozen=True)
class Context:
    """What every track of one analysis shares."""

    data: blocks.BlockData
    settings: AnalysisSettings
    warm: Bool
    alpha: float
    alpha_miss: float  # Bonferroni over the statistical KPIs, for MISS
    alpha_guard: float  # Bonferroni over the guard rails
    edges: quantiles.Edges
    latency_used: Int
    latency_clock: Float  # effective observation count of the latency blocks (effective_count)
    pooled_c: quantiles.Pooled
    pooled_b: quantiles.Pooled
    since: int = 0  # the first look whose statistics are needed (verdict.evaluate: only the last)

    @classmethod
    def of(cls, data: blocks.BlockData, settings: AnalysisSettings, *, since: int = 0) -> Context:
        warm = blocks.warm(data, settings.warmup_seconds)
        latency = ~warm & ~data.lacks("requests", "latency")
        counts_c, counts_b = data.candidate.counts[latency], data.baseline.counts[latency]
        w_c, w_b = quantiles.profile_weights(counts_c.sum(axis=1), counts_b.sum(axis=1))
        alpha = 1.0 - settings.confidence
        n_stat = max(1, sum(k.kind in STATISTICAL for k in settings.kpis))
        return cls(
            data=data,
            settings=settings,
            warm=warm,
            alpha=alpha,
            alpha_miss=alpha / n_stat,
            alpha_guard=(1.0 - settings.guard_confidence) / max(1, len(settings.guards)),
            edges=quantiles.Edges.from_bounds(data.bounds),
            latency_used=count(latency),
            latency_clock=effective_count(counts_c.sum(axis=1), counts_b.sum(axis=1), count(latency)),
            pooled_c=quantiles.Pooled.of(counts_c, w_c),
            pooled_b=quantiles.Pooled.of(counts_b, w_b),
            since=since,
        )

    def first_prefix(self, used: Int) -> int:
        """The first prefix look ``since`` reads of a statistic whose looks see ``used`` blocks."""
        return int(used[self.since]) - 1 if 0 <= self.since < used.shape[0] else 0


@dataclass(frozen=True)
class _Statistic:
    """A log-ratio statistic over looks, before its intervals."""

    d: Float
    var: Float
    df: Float
    used: Int
    enough: Bool
    n_candidate: Float
    clock: Float  # the arms' effective observation count so far (the boundary's clock, confseq)


def effective_count(n_c: Float, n_b: Float, used: Int) -> Float:
    """Per look: N_c N_b / (N_c + N_b) of the arms' cumulative observations in the statistic's blocks,
    the count a two-arm contrast's information grows with (0 before any)."""
    cum_c, cum_b = np.cumsum(n_c), np.cumsum(n_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_prefix = np.where(cum_c + cum_b > 0, cum_c * cum_b / (cum_c + cum_b), 0.0)
    return expand(np.asarray(per_prefix, dtype=np.float64), used, 0.0)


def _quantile(ctx: Context, p: float) -> _Statistic:
    used = ctx.latency_used
    qt = quantiles.ratio_track(ctx.pooled_c, ctx.pooled_b, p, ctx.edges, first=ctx.first_prefix(used))
    tail = expand(qt.tail, used, 0.0)
    return _Statistic(
        d=expand(qt.log_ratio, used, np.nan),
        var=expand(qt.variance, used, np.inf),
        df=expand(qt.df, used, 0.0),
        used=used,
        enough=(used >= ctx.settings.min_blocks) & (tail >= ctx.settings.min_tail_count),
        n_candidate=expand(qt.n_candidate, used, 0.0),
        clock=ctx.latency_clock,
    )


def kpi_blocks(data: blocks.BlockData, warm: Bool, kind: KpiKind) -> Bool:
    """The blocks a ratio-of-sums KPI reads (also what the cost projection reads)."""
    if kind is KpiKind.THROUGHPUT_PER_CPU:
        return ~warm & ~data.lacks("requests", "cpu")
    return ~warm & ~data.lacks("requests", "cpu", "memory")


def block_cost(arm: blocks.Arm, prices: tuple[float, float], interval: float) -> Float:
    """Each block's cost of ``arm`` in $ at (per vCPU-hour, per GiB-hour) ``prices`` (each build may
    have its own: OpenCost prices the nodes its pods run on)."""
    cpu_hour, memory_gib_hour = prices
    return np.asarray(arm.cpu * cpu_hour / 3600.0 + arm.memory * (interval * memory_gib_hour / 3600.0 / GIB))


def _ratio_of_sums(ctx: Context, kind: KpiKind) -> _Statistic:
    """Requests per CPU-second or cost per request, both arms on one time profile: block j of arm a
    is weighted by omega_j / R_aj (quantiles.profile_weights on the requests), so each arm's ratio is
    a common-profile average of its per-block CPU (or cost) per request."""
    data, base, cand = ctx.data, ctx.data.baseline, ctx.data.candidate
    mask = kpi_blocks(data, ctx.warm, kind)
    w_c, w_b = quantiles.profile_weights(cand.requests[mask], base.requests[mask])
    used = count(mask)
    first = ctx.first_prefix(used)
    if kind is KpiKind.THROUGHPUT_PER_CPU:
        rt = ratios.track(
            cand.requests[mask] * w_c,
            cand.cpu[mask] * w_c,
            base.requests[mask] * w_b,
            base.cpu[mask] * w_b,
            first=first,
        )
    else:
        cost_c = block_cost(cand, ctx.settings.pricing.of("candidate"), data.interval)
        cost_b = block_cost(base, ctx.settings.pricing.of("baseline"), data.interval)
        rt = ratios.track(
            cost_c[mask] * w_c,
            cand.requests[mask] * w_c,
            cost_b[mask] * w_b,
            base.requests[mask] * w_b,
            first=first,
        )
    return _Statistic(
        d=expand(rt.log_ratio, used, np.nan),
        var=expand(rt.variance, used, np.inf),
        df=expand(rt.df, used, 0.0),
        used=used,
        enough=used >= ctx.settings.min_blocks,
        n_candidate=np.cumsum(np.where(mask, cand.requests, 0.0)),
        clock=effective_count(cand.requests[mask], base.requests[mask], used),
    )


def _df(stat: _Statistic) -> Float | None:
    """The statistic's degrees of freedom, or None when they are the HAC ones of its block count (the
    common case, which the multiplier reads from a cached table)."""
    some = stat.used > 0
    return None if np.array_equal(stat.df[some], hac.degrees_of_freedom(stat.used[some])) else stat.df


def _interval_track(
    ctx: Context,
    stat: _Statistic,
    *,
    name: str,
    kind: str,
    target: float,
    direction: Direction,
    promote_below: float = math.nan,
) -> Track:
    """Anytime intervals at alpha (PASS) and at the Bonferroni alpha (MISS), and the three-way reading.

    A KPI passes when the alpha interval clears its target and misses when the Bonferroni interval is
    on the wrong side. A guard rail (``promote_below`` given) misses on harm, at the guard alpha,
    against its maxRatio (``target``), and passes when the alpha interval shows it below
    ``promote_below`` (non-inferiority: the claim a promotion needs, Schultzberg et al. 2024)."""
    horizon = ctx.settings.information_horizon_seconds
    sd = np.sqrt(stat.var)
    guard = math.isfinite(promote_below)
    a_miss = ctx.alpha_guard if guard else ctx.alpha_miss
    interval = ctx.settings.interval_seconds
    # Each claim is one-sided, with its mixture fixed at the first look that may decide and the arms'
    # effective observation count as the clock (confseq.clock_ratio): not the estimated 1/V, whose
    # few-degrees-of-freedom noise at J_min would fix the mixture far off and can make the clock stall.
    with np.errstate(divide="ignore"):
        info = 1.0 / stat.var
    # The look that fixes the mixture needs no variance: looks before ``ctx.since`` carry none
    # (verdict.evaluate computes only the latest), and the clock is traffic, not 1/V.
    eligible = stat.enough & np.isfinite(stat.d)
    clock = {"interval": interval, "horizon": horizon}
    rho_pass = confseq.rho_track(info, stat.clock, stat.used, eligible, alpha=ctx.alpha, **clock)
    rho_miss = confseq.rho_track(info, stat.clock, stat.used, eligible, alpha=a_miss, **clock)
    m_pass = confseq.calibrated_info(info, rho_pass, stat.used, _df(stat), ctx.alpha)
    m_miss = confseq.calibrated_info(info, rho_miss, stat.used, _df(stat), a_miss)
    with np.errstate(invalid="ignore"):  # zero variance: no information clock, and no width either
        half_pass = np.where(sd > 0, m_pass * sd, 0.0)
        half_miss = np.where(sd > 0, m_miss * sd, 0.0)
    log_t = math.log(target)
    log_pass = math.log(promote_below) if guard else log_t
    lower, upper = stat.d - half_pass, stat.d + half_pass
    miss_lower, miss_upper = stat.d - half_miss, stat.d + half_miss
    if direction is Direction.HIGHER:
        passed, missed = lower > log_pass, miss_upper < log_t
    else:
        passed, missed = upper < log_pass, miss_lower > log_t
    reading = np.where(passed, Read.PASS, np.where(missed, Read.MISS, Read.OPEN))
    reading = np.where(stat.enough & np.isfinite(stat.d) & np.isfinite(stat.var), reading, Read.NO_DATA)
    return Track(
        name=name,
        kind=kind,
        target=target,
        direction=direction,
        estimate=stat.d,
        variance=stat.var,
        lower=lower,
        upper=upper,
        reading=reading.astype(np.int64),
        used=stat.used,
        n_candidate=stat.n_candidate,
        alpha_pass=ctx.alpha,
        alpha_miss=a_miss,
        miss_lower=miss_lower,
        miss_upper=miss_upper,
        promote_below=promote_below,
        rho_pass=rho_pass,
        rho_miss=rho_miss,
    )


def _faults(ctx: Context, kpi: KpiTarget) -> Track:
    faults, _ = fault_totals(ctx.data)
    has = ~ctx.data.missing[:, blocks.SIGNALS.index("faults")]
    nan = np.full(ctx.data.n_blocks, np.nan)
    return Track(
        name=kpi.name,
        kind=kpi.kind.value,
        target=kpi.target,
        direction=kpi.direction,
        estimate=faults,
        variance=nan,
        lower=nan,
        upper=nan,
        reading=np.where(faults > kpi.target, Read.MISS, Read.PASS).astype(np.int64),
        used=count(has),
        n_candidate=nan,
        alpha_pass=ctx.alpha,
        alpha_miss=ctx.alpha,
    )


def fault_totals(data: blocks.BlockData) -> tuple[Float, Float]:
    """Per look: cumulative candidate memory faults and pod-hours (every block with fault data, warm-up
    included: a crash during warm-up is still a crash)."""
    has = ~data.missing[:, blocks.SIGNALS.index("faults")]
    faults = np.cumsum(np.where(has, data.candidate.faults, 0.0))
    pod_hours = np.cumsum(np.where(has, data.candidate.pods * data.interval / 3600.0, 0.0))
    return faults, pod_hours


def kpi_track(ctx: Context, kpi: KpiTarget) -> Track:
    """One improvement target over all looks."""
    if kpi.kind is KpiKind.MEMORY_FAULTS:
        return _faults(ctx, kpi)
    if kpi.kind is KpiKind.LATENCY_QUANTILE:
        assert kpi.quantile is not None
        stat = _quantile(ctx, kpi.quantile)
    else:
        stat = _ratio_of_sums(ctx, kpi.kind)
    return _interval_track(
        ctx, stat, name=kpi.name, kind=kpi.kind.value, target=kpi.target, direction=kpi.direction
    )


def _non_inferior_log_e(
    errors: tuple[Float, Float], requests: tuple[Float, Float], guard: GuardRail, phi: Float
) -> Float:
    """Running max of log E for "candidate rate <= max(promote_below x baseline rate, baseline rate +
    floor)". Its null (the candidate above both bounds) lies inside the null of each of two tests: the
    rate ratio above promote_below (the mirrored ratio e-process, which needs errors to say anything)
    and the candidate's own rate above the floor (``counts.log_e_rate_below``, which a clean candidate
    passes after about ln(6/alpha)/floor requests; p_c <= floor implies p_c <= p_b + floor). The mean
    of the two e-processes is one e-process for the intersection, so a look at 1/alpha spends alpha."""
    (ec, eb), (rc, rb) = errors, requests
    # The mixture is centred on equal rates (multiplier promote_below over r0 = 1 / promote_below):
    # a healthy candidate sits there, and weights fixed in advance cost nothing in validity.
    ratio = counts.log_e_path(eb, ec, rb, rc, 1.0 / guard.promote_below, phi=phi, centre=guard.promote_below)
    floor = counts.log_e_rate_below(ec, rc, guard.floor, phi=counts.rate_dispersion(ec, rc, guard.floor))
    return counts.running_max(np.logaddexp(ratio, floor) - math.log(2.0))


def _errors(ctx: Context, guard: GuardRail) -> Track:
    """The error-rate guard: e-processes on the per-block error counts. Harm (MISS, at the guard
    alpha): the rate ratio exceeds maxRatio. Non-inferiority (PASS, at alpha): the candidate's rate is
    below max(promote_below x the baseline's, the baseline's + nonInferiorityFloor), so a service
    with no errors at all can pass (``_non_inferior_log_e``)."""
    data, base, cand = ctx.data, ctx.data.baseline, ctx.data.candidate
    mask = ~ctx.warm & ~data.lacks("requests", "errors")
    used = count(mask)
    ec, eb, rc, rb = cand.errors[mask], base.errors[mask], cand.requests[mask], base.requests[mask]
    phi = counts.burst_dispersion(ec, eb, rc, rb)  # errors come in bursts: temper by a predictable dispersion
    log_e = expand(counts.log_e_process(ec, eb, rc, rb, guard.max_ratio, phi=phi), used, 0.0)
    pass_log_e = expand(_non_inferior_log_e((ec, eb), (rc, rb), guard, phi), used, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log((np.cumsum(ec) / np.cumsum(rc)) / (np.cumsum(eb) / np.cumsum(rb)))
        variance = 1.0 / np.cumsum(ec) + 1.0 / np.cumsum(eb)  # Poisson log rate ratio (for the ETA only)
    threshold = math.log(1.0 / ctx.alpha_guard)
    pass_threshold = math.log(1.0 / ctx.alpha)
    reading = np.select(
        [log_e >= threshold, pass_log_e >= pass_threshold, used > 0],
        [Read.MISS, Read.PASS, Read.OPEN],
        default=Read.NO_DATA,
    )
    nan = np.full(data.n_blocks, np.nan)
    return Track(
        name=guard.name,
        kind=guard.kind.value,
        target=guard.max_ratio,
        direction=Direction.LOWER,
        estimate=expand(log_ratio, used, np.nan),
        variance=expand(variance, used, np.inf),
        lower=nan,
        upper=nan,
        reading=reading.astype(np.int64),
        used=used,
        n_candidate=expand(np.cumsum(rc), used, 0.0),
        alpha_pass=ctx.alpha,
        alpha_miss=ctx.alpha_guard,
        log_e=log_e,
        threshold=threshold,
        promote_below=guard.promote_below,
        floor=guard.floor,
        pass_log_e=pass_log_e,
        pass_threshold=pass_threshold,
    )


def guard_track(ctx: Context, guard: GuardRail) -> Track:
    """One guard rail over all looks: MISS means breached (harm), PASS shown non-inferior."""
    if guard.kind is GuardKind.ERROR_RATE:
        return _errors(ctx, guard)
    assert guard.quantile is not None
    return _interval_track(
        ctx,
        _quantile(ctx, guard.quantile),
        name=guard.name,
        kind=guard.kind.value,
        target=guard.max_ratio,
        direction=Direction.LOWER,
        promote_below=guard.promote_below,
    )
