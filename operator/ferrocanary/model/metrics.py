"""``spec.analysis.metrics``, typed: which system's series each signal is read from.

A ``preset`` names a system the operator knows the series of: ``contract`` (the metrics contract,
the default), ``istio``, ``ingress-nginx`` (requests, errors, latency) and ``cadvisor`` (CPU, memory,
pods and container faults from cAdvisor and kube-state-metrics; requests and latency from the
contract). ``resources`` says where CPU, memory, pods and faults come from when the preset is a
request/latency one: ``process`` (the contract's process collector) or ``cadvisor``; Istio and
ingress-nginx default to ``cadvisor``, because their users' workloads rarely carry the contract's
``track`` label. ``templates`` override single signals with PromQL of the team's own, checked by
``promql.check``. The PromQL of the presets lives in ``ferrocanary.metrics.presets``.

``kpis`` are the team's own KPIs: a ratio of two counters per arm (``numerator``/``denominator``,
e.g. database calls per request) or a quantile of a histogram of their own, each with a target
(candidate/baseline) and a direction, judged like the built-in ones.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ferrocanary.model import promql

PRESETS: tuple[str, ...] = ("contract", "istio", "ingress-nginx", "cadvisor")
RESOURCES: tuple[str, ...] = ("process", "cadvisor")
#: Signals a template can replace. Counters are read raw at block boundaries (no range, no rate);
#: gauges are ``..._over_time`` aggregates over ``{{range}}``, read at each block's end.
COUNTER_SIGNALS: tuple[str, ...] = ("requests", "errors", "latency", "cpu")
GAUGE_SIGNALS: tuple[str, ...] = ("memory", "pods", "faults")
SIGNALS: tuple[str, ...] = COUNTER_SIGNALS + GAUGE_SIGNALS
LATENCY_UNITS: Mapping[str, float] = {"seconds": 1.0, "milliseconds": 0.001}
#: Presets whose series name each arm by its Service (the arm's ``service`` must be set).
NEEDS_SERVICE: frozenset[str] = frozenset({"ingress-nginx"})


@dataclass(frozen=True)
class CustomKpi:
    """A KPI of the team's own: ``ratio`` (numerator/denominator counters) or ``quantile`` (histogram)."""

    name: str
    kind: str  # "ratio" or "quantile"
    target: float  # candidate/baseline
    direction: str = "lower"  # "lower" or "higher": which way is better
    numerator: str = ""
    denominator: str = ""
    histogram: str = ""  # the _bucket series (with le)
    quantile: float | None = None
    latency_unit: str = "seconds"


@dataclass(frozen=True)
class MetricsSpec:
    """Where each signal comes from; ``templates`` hold only the signals the spec overrides."""

    preset: str = "contract"
    resources: str = "process"
    templates: Mapping[str, str] = field(default_factory=dict)
    latency_unit: str | None = None  # None: the preset's (Istio: milliseconds), else seconds
    kpis: tuple[CustomKpi, ...] = ()

    def uses_service(self) -> bool:
        """Whether a resolved query names the arm's Service."""
        return self.preset in NEEDS_SERVICE or any(
            "service" in promql.placeholders(t) for t in self.templates.values()
        )


def parse(analysis_spec: Mapping[str, Any]) -> MetricsSpec:
    """``spec.analysis.metrics``; ValueError naming the field for anything the operator cannot run."""
    where = "spec.analysis.metrics"
    raw = analysis_spec.get("metrics")
    if raw is None or raw == {}:
        return MetricsSpec()
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: expected an object")
    unknown = sorted(set(raw) - {"preset", "resources", "templates", "latencyUnit", "kpis", "templateRef"})
    if unknown:
        known = "templateRef, preset, resources, templates, latencyUnit, kpis"
        raise ValueError(f"{where}.{unknown[0]}: unknown field; known: {known}")
    preset = raw.get("preset", "contract")
    if preset not in PRESETS:
        raise ValueError(f"{where}.preset: expected one of {', '.join(PRESETS)}, got {preset!r}")
    default_resources = "cadvisor" if preset in ("istio", "ingress-nginx", "cadvisor") else "process"
    resources = raw.get("resources", default_resources)
    if resources not in RESOURCES:
        raise ValueError(f"{where}.resources: expected one of {', '.join(RESOURCES)}, got {resources!r}")
    if preset == "cadvisor" and resources != "cadvisor":
        raise ValueError(
            f"{where}.resources: preset cadvisor reads resources from cadvisor, got {resources!r}"
        )
    unit = raw.get("latencyUnit")
    if unit is not None and unit not in LATENCY_UNITS:
        raise ValueError(f"{where}.latencyUnit: expected seconds or milliseconds, got {unit!r}")
    return MetricsSpec(
        preset=preset,
        resources=resources,
        templates=_templates(raw, where),
        latency_unit=unit,
        kpis=_kpis(raw.get("kpis"), f"{where}.kpis"),
    )


def _templates(raw: Mapping[str, Any], where: str) -> dict[str, str]:
    given = raw.get("templates") or {}
    if not isinstance(given, Mapping):
        raise ValueError(f"{where}.templates: expected an object")
    unknown = sorted(set(given) - set(SIGNALS))
    if unknown:
        raise ValueError(f"{where}.templates.{unknown[0]}: unknown signal; known: {', '.join(SIGNALS)}")
    counters = tuple(p for p in promql.PLACEHOLDERS if p != "range")
    return {
        name: promql.check(
            value,
            f"{where}.templates.{name}",
            allowed=counters if name in COUNTER_SIGNALS else promql.PLACEHOLDERS,
        )
        for name, value in given.items()
    }


def template_name(analysis_spec: Mapping[str, Any]) -> str | None:
    """The MetricTemplate ``spec.analysis.metrics.templateRef`` names, if any (a valid object name)."""
    raw = analysis_spec.get("metrics")
    ref = raw.get("templateRef") if isinstance(raw, Mapping) else None
    if ref is None:
        return None
    name = ref.get("name") if isinstance(ref, Mapping) else None
    if not isinstance(name, str) or len(name) > 253 or not _OBJECT_NAME.fullmatch(name):
        raise ValueError(
            f"spec.analysis.metrics.templateRef.name: must be a MetricTemplate's name, got {name!r}"
        )
    return name


_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def template_namespace(analysis_spec: Mapping[str, Any], own: str) -> str:
    """The namespace of the MetricTemplate ``templateRef`` names: its ``namespace``, else ``own`` (the
    canary's). Whether the operator may read templates there is the operator's to say (reconcile)."""
    raw = analysis_spec.get("metrics")
    ref = raw.get("templateRef") if isinstance(raw, Mapping) else None
    where = ref.get("namespace") if isinstance(ref, Mapping) else None
    if where is None or where == "":
        return own
    if not isinstance(where, str) or len(where) > 63 or not _NAMESPACE.fullmatch(where):
        raise ValueError(
            f"spec.analysis.metrics.templateRef.namespace: must be a namespace's name, got {where!r}"
        )
    return where


def with_template(analysis_spec: Mapping[str, Any], template: Mapping[str, Any]) -> dict[str, Any]:
    """``spec.analysis`` with the MetricTemplate's spec under its own metrics: its fields win, templates
    signal by signal, its KPIs after the template's."""
    own = dict(analysis_spec.get("metrics") or {})
    own.pop("templateRef", None)
    merged: dict[str, Any] = {**template, **own}
    merged["templates"] = {**(template.get("templates") or {}), **(own.get("templates") or {})}
    merged["kpis"] = [*(template.get("kpis") or []), *(own.get("kpis") or [])]
    return {**analysis_spec, "metrics": merged}


def spec_with_template(raw_spec: Mapping[str, Any], template_spec: Mapping[str, Any]) -> dict[str, Any]:
    """A RustCanary's ``.spec`` with its MetricTemplate's spec merged into ``analysis.metrics``."""
    analysis_spec = raw_spec.get("analysis")
    analysis_spec = analysis_spec if isinstance(analysis_spec, Mapping) else {}
    return {**raw_spec, "analysis": with_template(analysis_spec, template_spec)}


def check_names(metrics: MetricsSpec, taken: list[str]) -> None:
    """A custom KPI may not share its name with a KPI or guard rail of ``spec.analysis``."""
    for i, kpi in enumerate(metrics.kpis):
        if kpi.name in taken:
            raise ValueError(
                f"spec.analysis.metrics.kpis[{i}].name: {kpi.name} is already a KPI or guard rail "
                "of spec.analysis"
            )


def check_arms(metrics: MetricsSpec, baseline_service: str | None, candidate_service: str | None) -> None:
    """A preset or template that names the arm's Service needs both Services in the spec."""
    if not metrics.uses_service():
        return
    for arm, service in (("baseline", baseline_service), ("candidate", candidate_service)):
        if not service:
            raise ValueError(
                f"spec.{arm}.service: required by spec.analysis.metrics (its queries name each arm's Service)"
            )


_OBJECT_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_KPI_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_COUNTER_PLACEHOLDERS = tuple(p for p in promql.PLACEHOLDERS if p != "range")


def _kpis(raw: Any, where: str) -> tuple[CustomKpi, ...]:
    if raw is None or raw == []:
        return ()
    if not isinstance(raw, list) or len(raw) > 8:
        raise ValueError(f"{where}: expected a list of at most 8 KPIs")
    kpis = tuple(_kpi(item, f"{where}[{i}]") for i, item in enumerate(raw))
    names = [k.name for k in kpis]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{where}: KPI names must be unique, {duplicates[0]} is repeated")
    return kpis


def _kpi(item: Any, where: str) -> CustomKpi:
    if not isinstance(item, Mapping):
        raise ValueError(f"{where}: expected an object")
    name = item.get("name")
    if not isinstance(name, str) or len(name) > 63 or not _KPI_NAME.fullmatch(name):
        raise ValueError(f"{where}.name: must be a lower-case name (a-z, 0-9, '-'), got {name!r}")
    kind = item.get("type")
    if kind not in ("ratio", "quantile"):
        raise ValueError(f"{where}.type: expected ratio or quantile, got {kind!r}")
    target = item.get("target")
    if (
        isinstance(target, bool)
        or not isinstance(target, int | float)
        or not math.isfinite(target)
        or target <= 0
    ):
        raise ValueError(f"{where}.target: must be a ratio > 0 (candidate/baseline), got {target!r}")
    direction = item.get("direction", "lower")
    if direction not in ("lower", "higher"):
        raise ValueError(
            f"{where}.direction: expected lower or higher (which way is better), got {direction!r}"
        )
    fields = {"ratio": ("numerator", "denominator"), "quantile": ("histogram",)}[kind]
    extra = sorted(set(item) - {"name", "type", "target", "direction", "quantile", "latencyUnit", *fields})
    if extra:
        raise ValueError(f"{where}.{extra[0]}: not a field of a {kind} KPI")
    queries = {
        f: promql.check(item.get(f, ""), f"{where}.{f}", allowed=_COUNTER_PLACEHOLDERS) for f in fields
    }
    quantile = item.get("quantile")
    if kind == "quantile" and (
        isinstance(quantile, bool) or not isinstance(quantile, int | float) or not 0.0 < quantile < 1.0
    ):
        raise ValueError(f"{where}.quantile: required within (0, 1) for a quantile KPI, got {quantile!r}")
    unit = item.get("latencyUnit", "seconds")
    if unit not in LATENCY_UNITS:
        raise ValueError(f"{where}.latencyUnit: expected seconds or milliseconds, got {unit!r}")
    return CustomKpi(
        name=name,
        kind=kind,
        target=float(target),
        direction=direction,
        numerator=queries.get("numerator", ""),
        denominator=queries.get("denominator", ""),
        histogram=queries.get("histogram", ""),
        quantile=float(quantile) if kind == "quantile" and quantile is not None else None,
        latency_unit=unit,
    )
