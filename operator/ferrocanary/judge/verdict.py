"""The judge's public answer: a Judgement (decision, human reason, every KPI's interval and ETA, cost).

``evaluate`` is one look at all blocks so far (what the controller calls once per interval);
``judgement_at`` turns look j of a ``looks.Looks`` table into the Judgement a person reads.
"""

from __future__ import annotations

import math

import numpy as np

from ferrocanary.judge import blocks, counts, eta, looks, tracks
from ferrocanary.model import recording
from ferrocanary.model.analysis import AnalysisSettings, Direction, KpiKind
from ferrocanary.model.decisions import CostProjection, Decision, Judgement, KpiResult, Reading

SECONDS_PER_MONTH = 730.0 * 3600.0  # the 730-hour month cloud price lists use

_DECISION = {
    looks.Code.CONTINUE: Decision.CONTINUE,
    looks.Code.HOLD: Decision.HOLD,
    looks.Code.PROMOTE: Decision.PROMOTE,
    looks.Code.ROLLBACK: Decision.ROLLBACK,
    looks.Code.INVALID: Decision.INVALID,
    looks.Code.INCONCLUSIVE: Decision.INCONCLUSIVE,
}
_READING = {
    tracks.Read.NO_DATA: Reading.NO_DATA,
    tracks.Read.OPEN: Reading.OPEN,
    tracks.Read.PASS: Reading.PASS,
    tracks.Read.MISS: Reading.MISS,
}


def evaluate(rec: recording.Recording, settings: AnalysisSettings) -> Judgement:
    """One look at all blocks of ``rec``: the decision the controller acts on now."""
    data = blocks.from_recording(rec)
    table = looks.compute(data, settings)
    return judgement_at(data, table, settings, data.n_blocks - 1)


def _exp(log_ratio: float) -> float:
    """exp() of a log ratio; an early look's interval can reach e^±1000, which is reported as 0 or inf."""
    return math.exp(log_ratio) if log_ratio < 700.0 else math.inf


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return "inf" if value > 0 else "-inf" if value < 0 else "n/a"
    if abs(value) >= 1e6:
        return f"{value:.2e}"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _minutes(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "never at this rate"
    return f"{seconds / 60.0:.0f} min"


def _interval_text(track: tracks.Track, j: int, alpha: float) -> str:
    if alpha == track.alpha_pass:
        lo, hi = track.lower[j], track.upper[j]
    else:
        lo, hi = track.miss_lower[j], track.miss_upper[j]
    return (
        f"ratio {_fmt(_exp(track.estimate[j]))} [{_fmt(_exp(lo))}, {_fmt(_exp(hi))}] "
        f"({100 * (1 - alpha):.3g}% anytime interval)"
    )


def _relation(track: tracks.Track, good: bool) -> str:
    lower_is_better = track.direction is Direction.LOWER
    return "<=" if good == lower_is_better else ">="


def _rate(data: blocks.BlockData, j: int) -> float:
    """Candidate requests per second in the latest block with data (the information rate for ETAs)."""
    ok = ~data.any_missing()[: j + 1]
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return 0.0
    return float(data.candidate.requests[idx[-1]] / data.interval)


def _without_interval(
    track: tracks.Track, estimate: float | None, reading: Reading, detail: str
) -> KpiResult:
    """A reading that is a rule or an e-value, not an interval: no bounds and no time to a decision."""
    return KpiResult(
        name=track.name,
        estimate=estimate,
        lower=None,
        upper=None,
        target=track.target,
        direction=track.direction,
        decision=reading,
        eta50_seconds=None,
        eta80_seconds=None,
        detail=detail,
    )


def _kpi_result(
    track: tracks.Track, j: int, data: blocks.BlockData, settings: AnalysisSettings, remaining_blocks: int
) -> KpiResult:
    reading = _READING[tracks.Read(int(track.reading[j]))]
    if track.kind == KpiKind.MEMORY_FAULTS.value:
        count = float(track.estimate[j]) if track.estimate.size else 0.0
        detail = f"{count:.0f} candidate memory faults (allowed {track.target:.0f})"
        return _without_interval(track, count, reading, detail)
    d = float(track.estimate[j])
    if track.log_e.size:  # e-process guard rail
        e_value = math.exp(min(float(track.log_e[j]), 700.0))
        detail = f"e-value {_fmt(e_value)} (breach at {_fmt(math.exp(track.threshold))})"
        return _without_interval(track, _exp(d) if math.isfinite(d) else None, reading, detail)
    finite = math.isfinite(d) and math.isfinite(float(track.variance[j]))
    eta50 = eta80 = None
    if reading in (Reading.PASS, Reading.MISS):
        eta50 = eta80 = 0.0
    elif finite:
        log_t = math.log(track.target)
        good_side = (d < log_t) == (track.direction is Direction.LOWER)
        common = {
            "delta": abs(d - log_t),
            "variance": float(track.variance[j]),
            "n_now": float(track.n_candidate[j]),
            "rate": _rate(data, j),
            "alpha": track.alpha_pass if good_side else track.alpha_miss,
            "horizon_seconds": settings.information_horizon_seconds,
            "used_seconds": float(track.used[j]) * settings.interval_seconds,
            "blocks_now": float(track.used[j]),
            "floor_seconds": max(0, remaining_blocks) * settings.interval_seconds,
        }
        eta50 = eta.eta_seconds(power=0.5, **common)
        eta80 = eta.eta_seconds(power=0.8, **common)
    detail = ""
    if reading is Reading.NO_DATA:
        detail = f"{int(track.used[j])}/{settings.min_blocks} blocks"
        if track.kind == KpiKind.LATENCY_QUANTILE.value:
            detail += f"; needs {settings.min_tail_count} samples above the quantile per arm"
    elif finite:
        detail = _interval_text(track, j, track.alpha_pass)
    return KpiResult(
        name=track.name,
        estimate=_exp(d) if math.isfinite(d) else None,
        lower=_exp(float(track.lower[j])) if finite else None,
        upper=_exp(float(track.upper[j])) if finite else None,
        target=track.target,
        direction=track.direction,
        decision=reading,
        eta50_seconds=eta50,
        eta80_seconds=eta80,
        detail=detail,
    )


def _cost(data: blocks.BlockData, settings: AnalysisSettings, j: int) -> CostProjection | None:
    ok = ~data.lacks("requests", "cpu", "memory")[: j + 1]
    if not ok.any():
        return None
    pricing = settings.pricing
    per_mem = data.interval * pricing.memory_gib_hour / 3600.0 / tracks.GIB

    def per_request(arm: blocks.Arm) -> float:
        cost = arm.cpu[: j + 1] * pricing.cpu_hour / 3600.0 + arm.memory[: j + 1] * per_mem
        requests = float(arm.requests[: j + 1][ok].sum())
        return float(cost[ok].sum()) / requests if requests > 0 else math.nan

    kappa_b, kappa_c = per_request(data.baseline), per_request(data.candidate)
    if not (math.isfinite(kappa_b) and math.isfinite(kappa_c)) or kappa_b <= 0:
        return None
    monthly = pricing.monthly_requests
    if monthly is None:
        total = float((data.baseline.requests[: j + 1] + data.candidate.requests[: j + 1])[ok].sum())
        monthly = total / (ok.sum() * data.interval) * SECONDS_PER_MONTH
    return CostProjection(monthly * kappa_b, monthly * kappa_c, 1.0 - kappa_c / kappa_b)


def _listing(items: list[str]) -> str:
    return "; ".join(items)


def _reason(
    cause: looks.Cause,
    *,
    data: blocks.BlockData,
    table: looks.Looks,
    settings: AnalysisSettings,
    j: int,
    results: tuple[KpiResult, ...],
    fault_bound: float | None,
) -> str:
    stat = [t for t in table.kpis if t.kind != KpiKind.MEMORY_FAULTS.value]
    if cause is looks.Cause.NO_BLOCKS:
        return "No blocks recorded yet; waiting for data."
    if cause is looks.Cause.FAULT:
        name = next(t.name for t in table.kpis if t.kind == KpiKind.MEMORY_FAULTS.value)
        return (
            f"{name}: the candidate had {table.faults[j]:.0f} memory fault(s) (OOMKill, SIGSEGV/SIGABRT exit "
            "or panic); any fault rolls back at once."
        )
    if cause is looks.Cause.MISSING:
        latest = [s for s, flag in zip(blocks.SIGNALS, data.missing[j], strict=True) if flag] or [
            "no traffic"
        ]
        run = int(table.missing_run[j])
        if run >= 3:
            return (
                f"Data missing for {run} blocks in a row (latest: {', '.join(latest)}); "
                "holding until metrics return."
            )
        return f"Data missing in the latest block ({', '.join(latest)}); waiting ({run} of 3 before holding)."
    if cause is looks.Cause.SRM:
        read = table.srm_mask[: j + 1]
        candidate = data.candidate.requests[: j + 1][read]
        share = candidate.sum() / max(1.0, (candidate + data.baseline.requests[: j + 1][read]).sum())
        configured = float(np.mean(data.weight[: j + 1][read]))
        e_value = _fmt(math.exp(min(table.srm_log_e[j], 700)))
        return (
            f"Sample-ratio mismatch: the candidate received {100 * share:.1f}% of requests against a "
            f"configured {configured:.1f}% on average, beyond the {100 * settings.sample_ratio_tolerance:g}% "
            f"tolerance (e-value {e_value} >= {_fmt(math.exp(table.srm_threshold))}); traffic is not "
            "split as configured, so no KPI can be trusted."
        )
    if cause is looks.Cause.GUARD:
        breached = [g for g in table.guards if g.reading[j] == tracks.Read.MISS]
        parts = []
        for g in breached:
            if g.log_e.size:
                parts.append(
                    f"{g.name}: candidate/baseline rate {_fmt(_exp(g.estimate[j]))} above "
                    f"{_fmt(g.target)} (e-value {_fmt(math.exp(min(g.log_e[j], 700)))} >= "
                    f"{_fmt(math.exp(g.threshold))})"
                )
            else:
                parts.append(f"{g.name}: {_interval_text(g, j, g.alpha_pass)} is above {_fmt(g.target)}")
        return "Guard rail breached, " + _listing(parts) + "."
    if cause is looks.Cause.BUCKETS:
        growth = math.exp(table.growth[j])
        shown = (
            "unbounded (an open-ended first or +Inf bucket)"
            if not math.isfinite(growth)
            else f"{growth:.2f}x"
        )
        return (
            f"Latency buckets too coarse: bucket edges grow by {shown} between p50 and p99.9 (at most "
            f"{settings.max_bucket_growth:.2f}x allowed); interpolation alone could fake the margin. Use "
            "exponential buckets (factor <= 1.1) or native histograms of schema >= 3."
        )
    if cause is looks.Cause.MISS:
        missed = [t for t in stat if t.reading[j] == tracks.Read.MISS]
        parts = [
            f"{t.name} {_interval_text(t, j, t.alpha_miss)} is not {_relation(t, True)} {_fmt(t.target)}"
            for t in missed
        ]
        return "Target missed: " + _listing(parts) + "."
    if cause is looks.Cause.PASS:
        parts = [
            f"{t.name} {_interval_text(t, j, t.alpha_pass)} {_relation(t, True)} {_fmt(t.target)}"
            for t in stat
        ]
        tail = ""
        if fault_bound is not None:
            tail = (
                f"; no memory faults (rate <= {_fmt(fault_bound)} per pod-hour at {settings.confidence:.0%})"
            )
        return "All KPIs met their targets: " + _listing(parts) + tail + "."
    open_parts = []
    for t, r in zip(stat, [r for r in results if r.name in {s.name for s in stat}], strict=True):
        if r.decision is Reading.NO_DATA:
            open_parts.append(f"{t.name}: not enough data yet ({r.detail})")
        elif r.decision is Reading.PASS:
            # Promotion waits for every KPI: say which ones are already settled, not that they "span".
            open_parts.append(
                f"{t.name} {_interval_text(t, j, t.alpha_pass)} already {_relation(t, True)} {_fmt(t.target)}"
            )
        else:
            open_parts.append(
                f"{t.name} {_interval_text(t, j, t.alpha_pass)} spans {_fmt(t.target)} "
                f"(ETA50 {_minutes(r.eta50_seconds)}, ETA80 {_minutes(r.eta80_seconds)})"
            )
    if cause is looks.Cause.TIMEOUT:
        return (
            f"Maximum duration {settings.max_duration_seconds / 60:.0f} min reached without a decision: "
            + _listing(open_parts)
            + "; never promoting on a timeout."
        )
    left = settings.max_duration_seconds - float(table.elapsed[j])
    late = [r for r in results if r.eta80_seconds is not None and r.eta80_seconds > left]
    warning = ""
    if late:
        names = ", ".join(r.name for r in late)
        warning = (
            f" ETA80 of {names} exceeds the {left / 60:.0f} min left: INCONCLUSIVE is likely unless the "
            "weight is raised."
        )
    return "Continue: " + _listing(open_parts) + "." + warning


def judgement_at(data: blocks.BlockData, table: looks.Looks, settings: AnalysisSettings, j: int) -> Judgement:
    """The Judgement a person reads for look j (j = -1: no blocks yet)."""
    if j < 0:
        return Judgement(Decision.CONTINUE, "No blocks recorded yet; waiting for data.", (), (), 0)
    remaining = settings.min_blocks - int(table.usable[j])
    kpis = tuple(_kpi_result(t, j, data, settings, remaining) for t in table.kpis)
    guards = tuple(_kpi_result(t, j, data, settings, remaining) for t in table.guards)
    has_faults = any(t.kind == KpiKind.MEMORY_FAULTS.value for t in table.kpis)
    fault_bound = None
    if has_faults:
        fault_bound = counts.poisson_upper(
            float(table.faults[j]), float(table.pod_hours[j]), 1.0 - settings.confidence
        )
    cause = looks.Cause(int(table.cause[j]))
    reason = _reason(
        cause, data=data, table=table, settings=settings, j=j, results=kpis, fault_bound=fault_bound
    )
    return Judgement(
        decision=_DECISION[looks.Code(int(table.decision[j]))],
        reason=reason,
        kpis=kpis,
        guards=guards,
        blocks_used=int(table.usable[j]),
        cost=_cost(data, settings, j),
        fault_rate_upper_bound=fault_bound,
    )
