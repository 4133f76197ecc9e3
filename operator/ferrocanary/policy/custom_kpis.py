"""Custom KPIs (``spec.analysis.metrics.kpis``) judged by the judge's own entry point, then combined.

Each custom KPI has its own recording (``metrics.custom`` builds it) in which its series sit where
a built-in KPI of the same shape looks: a ratio as the cost-per-request statistic (numerator as CPU
seconds over the denominator as requests; memory zero), a quantile as the latency quantile. The
judge evaluates that recording with settings that hold this one KPI (same confidence, horizon,
minimum blocks, warm-up; no guard rails, which the main evaluation already applies), so the
custom KPI gets the same estimate, anytime-valid interval, reading and ETA as a built-in one.

Promotion stays an intersection-union test: it needs every KPI, built-in and custom, to pass at the
per-KPI confidence, which is what the judge does within one evaluation. The combined decision
takes the most cautious one: Rollback, then Invalid, then Inconclusive, then Hold, then Continue;
Promote only when all promote. Its reason is that of the evaluation that decided it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ferrocanary.model import analysis, decisions, recording
from ferrocanary.model import metrics as metrics_spec
from ferrocanary.model import spec as canary_spec

Evaluate = Callable[[recording.Recording, analysis.AnalysisSettings], decisions.Judgement]
D = decisions.Decision
_CAUTION: tuple[decisions.Decision, ...] = (
    D.ROLLBACK,
    D.INVALID,
    D.INCONCLUSIVE,
    D.HOLD,
    D.CONTINUE,
    D.PROMOTE,
)


def settings_for(
    settings: analysis.AnalysisSettings, kpi: metrics_spec.CustomKpi
) -> analysis.AnalysisSettings:
    """The main settings with this KPI alone, in the shape of the built-in KPI that reads its blocks."""
    direction = analysis.Direction.LOWER if kpi.direction == "lower" else analysis.Direction.HIGHER
    if kpi.kind == "ratio":
        target = analysis.KpiTarget(
            kpi.name, analysis.KpiKind.COST_PER_REQUEST, kpi.target, direction=direction
        )
    else:
        target = analysis.KpiTarget(
            kpi.name,
            analysis.KpiKind.LATENCY_QUANTILE,
            kpi.target,
            quantile=kpi.quantile,
            direction=direction,
        )
    return dataclasses.replace(settings, kpis=(target,), guards=())


def evaluate(
    evaluate_one: Evaluate, rec: recording.Recording, spec: canary_spec.CanarySpec
) -> decisions.Judgement:
    """The judgement of the built-in KPIs, with each custom KPI's judged alongside and combined."""
    main = evaluate_one(rec, analysis.with_prices(spec.settings, rec.prices))
    if not spec.metrics.kpis:
        return main
    judged = [main]
    for kpi in spec.metrics.kpis:
        own = rec.custom.get(kpi.name)
        if own is None or not own.blocks:
            judged.append(_no_data(main, kpi))
            continue
        judged.append(evaluate_one(own, settings_for(spec.settings, kpi)))
    return combine(main, judged[1:])


def _no_data(main: decisions.Judgement, kpi: metrics_spec.CustomKpi) -> decisions.Judgement:
    reading = decisions.Reading.NO_DATA
    direction = analysis.Direction.LOWER if kpi.direction == "lower" else analysis.Direction.HIGHER
    result = decisions.KpiResult(kpi.name, None, None, None, kpi.target, direction, reading, None, None)
    return decisions.Judgement(D.HOLD, f"{kpi.name}: no data yet", (result,), (), main.blocks_used)


def combine(main: decisions.Judgement, custom: list[decisions.Judgement]) -> decisions.Judgement:
    """One judgement: the main's guards and cost, every KPI, the most cautious decision and its reason."""
    every = [main, *custom]
    decision = min((j.decision for j in every), key=_CAUTION.index)
    deciding = main if main.decision == decision else next(j for j in custom if j.decision == decision)
    kpis = main.kpis + tuple(k for j in custom for k in j.kpis)
    return dataclasses.replace(main, decision=decision, reason=deciding.reason, kpis=kpis)
