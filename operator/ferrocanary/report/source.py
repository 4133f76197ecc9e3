"""The blocks a RustCanary was judged on, fetched again from its Prometheus for reports and recordings.

The window is the one the controller analysed: from ``status.startedAt`` to the decision (or now),
less the Prometheus lag it waits for, cut into the spec's blocks with the traffic steps from status.
Blocks are aligned to the start, so this reproduces the controller's blocks exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ferrocanary.judge import verdict
from ferrocanary.kube import rest
from ferrocanary.metrics import prometheus, protocol
from ferrocanary.model import analysis, decisions, recording
from ferrocanary.model import spec as canary_spec
from ferrocanary.policy import custom_kpis
from ferrocanary.policy import state as policy_state
from ferrocanary.report import render, trajectory


def canary_recording(
    api: rest.JsonApi, obj: Mapping[str, Any], now: datetime | None = None
) -> recording.Recording:
    """The canary's blocks. Raises ValueError if it never started, MetricsUnavailableError on Prometheus."""
    namespace = str(obj["metadata"]["namespace"])
    spec = canary_spec.parse(obj.get("spec"))
    state = policy_state.from_status(obj.get("status"))
    if state.started_at is None:
        raise ValueError(f"{namespace}/{obj['metadata']['name']} has not started analysing yet")
    end = (state.decided_at or now or datetime.now(UTC)) - timedelta(seconds=spec.prometheus.lag_seconds)
    steps = tuple(protocol.StepChange(s.started_at, s.weight) for s in state.steps)
    window = protocol.canary_window(namespace, spec, state.started_at, end, steps)
    rec = prometheus.from_spec(api, namespace, spec.prometheus).fetch(window)
    # The settings travel with the blocks, so `ferrocanary analyze --recording` alone reproduces the verdict.
    return dataclasses.replace(rec, analysis=dict(spec.analysis_source))


def write_report(
    api: rest.JsonApi, obj: Mapping[str, Any], out: Path, now: datetime | None = None
) -> tuple[Path, recording.Recording]:
    """Fetch the canary's blocks, replay the judge's looks, write report.md and its plots into ``out``."""
    rec = canary_recording(api, obj, now)
    return render_report(obj, rec, out), rec


def with_custom_kpis(
    looks: list[decisions.Judgement],
    rec: recording.Recording,
    spec: canary_spec.CanarySpec,
    settings: analysis.AnalysisSettings,
) -> list[decisions.Judgement]:
    """The last look with each custom KPI's result, judged on its own counters as the operator judges
    it, so the report's KPI table lists the custom KPIs like the built-in ones."""
    if not looks or not spec.metrics.kpis:
        return looks
    extra: list[decisions.KpiResult] = []
    for kpi in spec.metrics.kpis:
        own = rec.custom.get(kpi.name)
        if own is not None and own.blocks:
            extra.extend(verdict.evaluate(own, custom_kpis.settings_for(settings, kpi)).kpis)
    return [*looks[:-1], dataclasses.replace(looks[-1], kpis=(*looks[-1].kpis, *extra))]


def render_report(obj: Mapping[str, Any], rec: recording.Recording, out: Path) -> Path:
    """report.md and its plots for a canary whose blocks are already at hand."""
    status: Mapping[str, Any] = obj.get("status") or {}
    spec = canary_spec.parse(obj.get("spec"))
    settings = analysis.with_prices(spec.settings, rec.prices)
    looks, decided = trajectory.trajectory(rec, settings)
    looks = with_custom_kpis(looks, rec, spec, settings)
    state = policy_state.from_status(status)
    data = render.ReportInput(
        name=str(obj["metadata"]["name"]),
        namespace=str(obj["metadata"]["namespace"]),
        verdict=str(status.get("phase", "Pending")),
        reason=str(status.get("verdictReason") or status.get("decisionReason") or ""),
        started_at=state.started_at,
        decided_at=state.decided_at,
        recording=rec,
        looks=looks,
        settings=settings,
        decided_at_block=decided,
    )
    return render.write(data, out)
