"""What the status says about the analysis: the judge's answer in camelCase, and the conditions.

Conditions follow the Kubernetes API conventions: one entry per type, ``lastTransitionTime`` moves
only when ``status`` flips, ``observedGeneration`` says which spec they describe.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ferrocanary.model import analysis, decisions
from ferrocanary.policy.state import format_time


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def kpi_status(result: decisions.KpiResult) -> dict[str, Any]:
    return {
        "name": result.name,
        "estimate": _number(result.estimate),
        "lower": _number(result.lower),
        "upper": _number(result.upper),
        "target": _number(result.target),
        "direction": result.direction.value,
        "decision": result.decision.value,
        "eta50Seconds": _number(result.eta50_seconds),
        "eta80Seconds": _number(result.eta80_seconds),
        "detail": result.detail,
    }


def p99_ratio(judgement: decisions.Judgement, settings: analysis.AnalysisSettings) -> str | None:
    """The printer column: the p99 KPI's estimate and interval, e.g. ``0.52 [0.47, 0.58]``."""
    names = [
        k.name
        for k in settings.kpis
        if k.kind is analysis.KpiKind.LATENCY_QUANTILE
        and k.quantile is not None
        and abs(k.quantile - 0.99) < 1e-9
    ]
    for result in judgement.kpis:
        if result.name in names and result.estimate is not None:
            low = "-inf" if result.lower is None else _ratio(result.lower)
            high = "inf" if result.upper is None else _ratio(result.upper)
            return f"{_ratio(result.estimate)} [{low}, {high}]"
    return None


def _ratio(value: float) -> str:
    """Two decimals, or two significant digits in exponent form from 1000 up: a first look's bound
    can be 1e129, and 130 digits in a ``kubectl get`` column hide every other column."""
    return f"{value:.2f}" if abs(value) < 1000 else f"{value:.2g}"


def pricing_status(pricing: analysis.Pricing) -> dict[str, Any]:
    """Which prices the cost KPI used: ``static`` (the spec's) or ``opencost`` (each build's nodes')."""
    return {
        "source": pricing.source,
        **{
            arm: {"cpuHour": pricing.of(arm)[0], "memoryGiBHour": pricing.of(arm)[1]}
            for arm in ("baseline", "candidate")
        },
    }


def judgement_status(judgement: decisions.Judgement, settings: analysis.AnalysisSettings) -> dict[str, Any]:
    cost = judgement.cost
    return {
        "decision": judgement.decision.value,
        "decisionReason": judgement.reason,
        "blocksUsed": judgement.blocks_used,
        "kpis": [kpi_status(k) for k in judgement.kpis],
        "guards": [kpi_status(g) for g in judgement.guards],
        "cost": None
        if cost is None
        else {
            "baselineMonthly": _number(cost.baseline_monthly),
            "candidateMonthly": _number(cost.candidate_monthly),
            "savingFraction": _number(cost.saving_fraction),
        },
        "pricing": pricing_status(settings.pricing),
        "faultRateUpperBound": _number(judgement.fault_rate_upper_bound),
        "p99Ratio": p99_ratio(judgement, settings),
    }


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    type_: str,
    status: bool,
    *,
    reason: str,
    message: str,
    now: datetime,
    generation: int,
) -> list[dict[str, Any]]:
    """The conditions with ``type_`` set; its transition time kept unless its status flipped."""
    text = "True" if status else "False"
    previous = next((c for c in conditions if c.get("type") == type_), None)
    changed = previous is None or previous.get("status") != text
    entry = {
        "type": type_,
        "status": text,
        "reason": reason,
        "message": message[:1024],
        "lastTransitionTime": format_time(now) if changed else previous.get("lastTransitionTime"),  # type: ignore[union-attr]
        "observedGeneration": generation,
    }
    return [*(dict(c) for c in conditions if c.get("type") != type_), entry]


def condition_status(conditions: Sequence[Mapping[str, Any]], type_: str) -> bool | None:
    """True/False of a condition, None when absent."""
    for c in conditions:
        if c.get("type") == type_:
            return c.get("status") == "True"
    return None
