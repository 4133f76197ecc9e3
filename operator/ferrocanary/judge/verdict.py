"""The judge's public answer: a Judgement (decision, human reason, every KPI's interval and ETA, cost).

``evaluate`` is one look at all blocks so far (what the controller calls once per interval);
``judgement_at`` turns look j of a ``looks.Looks`` table into the Judgement a person reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

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
    table = looks.compute(data, settings, since=data.n_blocks - 1)  # only the latest look is read
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
        f"({100 * (1 - alpha):.3g}% one-sided anytime interval)"
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
    track: tracks.Track,
    estimate: float | None,
    reading: Reading,
    detail: str,
    etas: tuple[float | None, float | None] = (None, None),
) -> KpiResult:
    """A reading that is a rule or an e-value, not an interval: no bounds (an e-process guard still
    publishes the approximate time to its non-inferiority claim)."""
    return KpiResult(
        name=track.name,
        estimate=estimate,
        lower=None,
        upper=None,
        target=track.target,
        direction=track.direction,
        decision=reading,
        eta50_seconds=etas[0],
        eta80_seconds=etas[1],
        detail=detail,
    )


def _etas(
    track: tracks.Track, j: int, data: blocks.BlockData, settings: AnalysisSettings, remaining_blocks: int
) -> tuple[float | None, float | None]:
    """(ETA50, ETA80) of the claim still open: a KPI toward whichever side of its target the estimate
    is on; a guard toward non-inferiority (its promote_below), the only claim a promotion waits for."""
    d, variance = float(track.estimate[j]), float(track.variance[j])
    if not (math.isfinite(d) and math.isfinite(variance)):
        return None, None
    if track.is_guard:
        delta, alpha, rhos = math.log(track.promote_below) - d, track.alpha_pass, track.rho_pass
        if delta <= 0:
            return math.inf, math.inf
    else:
        log_t = math.log(track.target)
        good_side = (d < log_t) == (track.direction is Direction.LOWER)
        delta, alpha = abs(d - log_t), track.alpha_pass if good_side else track.alpha_miss
        rhos = track.rho_pass if good_side else track.rho_miss
    common = {
        "delta": delta,
        "variance": variance,
        "n_now": float(track.n_candidate[j]),
        "rate": _rate(data, j),
        "alpha": alpha,
        "horizon_seconds": settings.information_horizon_seconds,
        "used_seconds": float(track.used[j]) * settings.interval_seconds,
        # e-process guards have no Student-t calibration (their variance is not estimated from blocks)
        "blocks_now": math.inf if track.log_e.size else float(track.used[j]),
        "floor_seconds": max(0, remaining_blocks) * settings.interval_seconds,
    }
    rho = float(rhos[j]) if rhos.size else None  # e-process guards: no mixture fixed
    return eta.eta_seconds(power=0.5, rho=rho, **common), eta.eta_seconds(power=0.8, rho=rho, **common)


def _e_guard_result(
    track: tracks.Track, j: int, reading: Reading, etas: tuple[float | None, float | None]
) -> KpiResult:
    d = float(track.estimate[j])
    e_harm = math.exp(min(float(track.log_e[j]), 700.0))
    e_safe = math.exp(min(float(track.pass_log_e[j]), 700.0))
    detail = (
        f"harm e-value {_fmt(e_harm)} (breach at {_fmt(math.exp(track.threshold))}); "
        f"non-inferiority below {_fmt(track.promote_below)}x: e-value {_fmt(e_safe)} "
        f"(shown at {_fmt(math.exp(track.pass_threshold))})"
    )
    return _without_interval(track, _exp(d) if math.isfinite(d) else None, reading, detail, etas)


def _kpi_result(
    track: tracks.Track, j: int, data: blocks.BlockData, settings: AnalysisSettings, remaining_blocks: int
) -> KpiResult:
    reading = _READING[tracks.Read(int(track.reading[j]))]
    if track.kind == KpiKind.MEMORY_FAULTS.value:
        count = float(track.estimate[j]) if track.estimate.size else 0.0
        detail = f"{count:.0f} candidate memory faults (allowed {track.target:.0f})"
        return _without_interval(track, count, reading, detail)
    settled = reading in (Reading.PASS, Reading.MISS)
    etas = (0.0, 0.0) if settled else _etas(track, j, data, settings, remaining_blocks)
    if track.log_e.size:  # e-process guard rail
        return _e_guard_result(track, j, reading, etas)
    d = float(track.estimate[j])
    finite = math.isfinite(d) and math.isfinite(float(track.variance[j]))
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
        eta50_seconds=etas[0],
        eta80_seconds=etas[1],
        detail=detail,
    )


def _cost(data: blocks.BlockData, settings: AnalysisSettings, j: int) -> CostProjection | None:
    """The monthly bill of each build at 100% traffic, from the blocks the cost KPI reads (warm-up
    blocks left out: they carry the CPU of pods that have just received a new share of traffic)."""
    warm = blocks.warm(data, settings.warmup_seconds)
    ok = tracks.kpi_blocks(data, warm, KpiKind.COST_PER_REQUEST)[: j + 1]
    if not ok.any():
        return None
    pricing = settings.pricing

    def per_request(arm: blocks.Arm, name: str) -> float:
        cost = tracks.block_cost(arm, pricing.of(name), data.interval)[: j + 1]
        requests = float(arm.requests[: j + 1][ok].sum())
        return float(cost[ok].sum()) / requests if requests > 0 else math.nan

    kappa_b, kappa_c = per_request(data.baseline, "baseline"), per_request(data.candidate, "candidate")
    if not (math.isfinite(kappa_b) and math.isfinite(kappa_c)) or kappa_b <= 0:
        return None
    monthly = pricing.monthly_requests
    if monthly is None:
        total = float((data.baseline.requests[: j + 1] + data.candidate.requests[: j + 1])[ok].sum())
        monthly = total / (ok.sum() * data.interval) * SECONDS_PER_MONTH
    return CostProjection(monthly * kappa_b, monthly * kappa_c, 1.0 - kappa_c / kappa_b)


def _listing(items: list[str]) -> str:
    return "; ".join(items)


@dataclass(frozen=True)
class _Look:
    """Everything a reason sentence may quote about look j."""

    data: blocks.BlockData
    table: looks.Looks
    settings: AnalysisSettings
    j: int
    kpis: tuple[KpiResult, ...]
    guards: tuple[KpiResult, ...]
    fault_bound: float | None

    @property
    def statistical(self) -> list[tracks.Track]:
        return [t for t in self.table.kpis if t.kind != KpiKind.MEMORY_FAULTS.value]


def _no_blocks(look: _Look) -> str:
    return "No blocks recorded yet; waiting for data."


def _fault(look: _Look) -> str:
    name = next(t.name for t in look.table.kpis if t.kind == KpiKind.MEMORY_FAULTS.value)
    return (
        f"{name}: the candidate had {look.table.faults[look.j]:.0f} memory fault(s) (OOMKill, "
        "SIGSEGV/SIGABRT exit or panic); any fault rolls back at once."
    )


def _missing(look: _Look) -> str:
    flags = look.data.missing[look.j]
    latest = [s for s, flag in zip(blocks.SIGNALS, flags, strict=True) if flag] or ["no traffic"]
    run = int(look.table.missing_run[look.j])
    if run >= 3:
        return (
            f"Data missing for {run} blocks in a row (latest: {', '.join(latest)}); "
            "holding until metrics return."
        )
    return f"Data missing in the latest block ({', '.join(latest)}); waiting ({run} of 3 before holding)."


def _srm(look: _Look) -> str:
    data, table, j = look.data, look.table, look.j
    read = table.srm_mask[: j + 1]
    candidate = data.candidate.requests[: j + 1][read]
    share = candidate.sum() / max(1.0, (candidate + data.baseline.requests[: j + 1][read]).sum())
    configured = float(np.mean(data.weight[: j + 1][read]))
    e_value = _fmt(math.exp(min(table.srm_log_e[j], 700)))
    tolerance = 100 * look.settings.sample_ratio_tolerance
    return (
        f"Sample-ratio mismatch: the candidate received {100 * share:.1f}% of requests against a "
        f"configured {configured:.1f}% on average, beyond the {tolerance:g}% "
        f"tolerance (e-value {e_value} >= {_fmt(math.exp(table.srm_threshold))}); traffic is not "
        "split as configured, so no KPI can be trusted."
    )


def _breach(g: tracks.Track, j: int) -> str:
    if g.log_e.size:
        return (
            f"{g.name}: candidate/baseline rate {_fmt(_exp(g.estimate[j]))} above "
            f"{_fmt(g.target)} (e-value {_fmt(math.exp(min(g.log_e[j], 700)))} >= "
            f"{_fmt(math.exp(g.threshold))})"
        )
    return f"{g.name}: {_interval_text(g, j, g.alpha_miss)} is above {_fmt(g.target)}"


def _guard(look: _Look) -> str:
    breached = [g for g in look.table.guards if g.reading[look.j] == tracks.Read.MISS]
    return "Guard rail breached, " + _listing([_breach(g, look.j) for g in breached]) + "."


def _buckets(look: _Look) -> str:
    growth = math.exp(look.table.growth[look.j])
    shown = (
        "unbounded (an open-ended first or +Inf bucket)" if not math.isfinite(growth) else f"{growth:.2f}x"
    )
    return (
        f"Latency buckets too coarse: bucket edges grow by {shown} between p50 and p99.9 (at most "
        f"{look.settings.max_bucket_growth:.2f}x allowed); interpolation alone could fake the margin. Use "
        "exponential buckets (factor <= 1.1) or native histograms of schema >= 3."
    )


def _miss(look: _Look) -> str:
    j = look.j
    missed = [t for t in look.statistical if t.reading[j] == tracks.Read.MISS]
    parts = [
        f"{t.name} {_interval_text(t, j, t.alpha_miss)} is not {_relation(t, True)} {_fmt(t.target)}"
        for t in missed
    ]
    return "Target missed: " + _listing(parts) + "."


def _safe(g: tracks.Track, j: int) -> str:
    """A guard's non-inferiority claim as shown (or not yet)."""
    if g.log_e.size:
        return (
            f"{g.name} rate ratio {_fmt(_exp(g.estimate[j]))} below {_fmt(g.promote_below)} "
            f"or rate below the baseline's + {_fmt(g.floor)} "
            f"(e-value {_fmt(math.exp(min(g.pass_log_e[j], 700)))} >= {_fmt(math.exp(g.pass_threshold))})"
        )
    return f"{g.name} {_interval_text(g, j, g.alpha_pass)} <= {_fmt(g.promote_below)}"


def _pass(look: _Look) -> str:
    j = look.j
    parts = [
        f"{t.name} {_interval_text(t, j, t.alpha_pass)} {_relation(t, True)} {_fmt(t.target)}"
        for t in look.statistical
    ]
    guards = ""
    if look.table.guards:
        guards = "; guard rails non-inferior: " + _listing([_safe(g, j) for g in look.table.guards])
    tail = ""
    if look.fault_bound is not None:
        level = f"{look.settings.confidence:.0%}"
        tail = f"; no memory faults (rate <= {_fmt(look.fault_bound)} per pod-hour at {level})"
    return "All KPIs met their targets: " + _listing(parts) + guards + tail + "."


def _open_parts(look: _Look) -> list[str]:
    """Each statistical KPI: not enough data, already settled, or spanning its target with its ETA."""
    j, parts = look.j, []
    results = {r.name: r for r in look.kpis}
    for t in look.statistical:
        r = results[t.name]
        if r.decision is Reading.NO_DATA:
            parts.append(f"{t.name}: not enough data yet ({r.detail})")
        elif r.decision is Reading.PASS:
            # Promotion waits for every KPI: say which ones are already settled, not that they "span".
            parts.append(
                f"{t.name} {_interval_text(t, j, t.alpha_pass)} already {_relation(t, True)} {_fmt(t.target)}"
            )
        else:
            parts.append(
                f"{t.name} {_interval_text(t, j, t.alpha_pass)} spans {_fmt(t.target)} "
                f"(ETA50 {_minutes(r.eta50_seconds)}, ETA80 {_minutes(r.eta80_seconds)})"
            )
    return parts


def _holding_guards(look: _Look) -> list[str]:
    """The guards whose non-inferiority is not shown yet, with their ETA."""
    results = {r.name: r for r in look.guards}
    parts = []
    for g in look.table.guards:
        if g.reading[look.j] == tracks.Read.PASS:
            continue
        r = results[g.name]
        parts.append(
            f"{g.name} not yet shown below {_fmt(g.promote_below)}x the baseline "
            f"(estimate {_fmt(r.estimate) if r.estimate is not None else 'n/a'}; "
            f"ETA50 {_minutes(r.eta50_seconds)}, ETA80 {_minutes(r.eta80_seconds)})"
        )
    return parts


def _timeout(look: _Look) -> str:
    open_parts = _open_parts(look) + _holding_guards(look)
    return (
        f"Maximum duration {look.settings.max_duration_seconds / 60:.0f} min reached without a decision: "
        + _listing(open_parts)
        + "; never promoting on a timeout."
    )


def _late_warning(look: _Look, results: tuple[KpiResult, ...]) -> str:
    left = look.settings.max_duration_seconds - float(look.table.elapsed[look.j])
    late = [r for r in results if r.eta80_seconds is not None and r.eta80_seconds > left]
    if not late:
        return ""
    names = ", ".join(r.name for r in late)
    return (
        f" ETA80 of {names} exceeds the {left / 60:.0f} min left: INCONCLUSIVE is likely unless the "
        "weight is raised."
    )


def _wait(look: _Look) -> str:
    return "Continue: " + _listing(_open_parts(look)) + "." + _late_warning(look, look.kpis)


def _guard_wait(look: _Look) -> str:
    return (
        "Every KPI met its target; promotion held back by the guard rails: "
        + _listing(_holding_guards(look))
        + "."
        + _late_warning(look, look.guards)
    )


_REASONS: dict[looks.Cause, Callable[[_Look], str]] = {
    looks.Cause.NO_BLOCKS: _no_blocks,
    looks.Cause.FAULT: _fault,
    looks.Cause.MISSING: _missing,
    looks.Cause.SRM: _srm,
    looks.Cause.GUARD: _guard,
    looks.Cause.BUCKETS: _buckets,
    looks.Cause.MISS: _miss,
    looks.Cause.PASS: _pass,
    looks.Cause.TIMEOUT: _timeout,
    looks.Cause.WAIT: _wait,
    looks.Cause.GUARD_WAIT: _guard_wait,
}


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
    reason = _REASONS[cause](_Look(data, table, settings, j, kpis, guards, fault_bound))
    return Judgement(
        decision=_DECISION[looks.Code(int(table.decision[j]))],
        reason=reason,
        kpis=kpis,
        guards=guards,
        blocks_used=int(table.usable[j]),
        cost=_cost(data, settings, j),
        fault_rate_upper_bound=fault_bound,
    )
