"""``spec.analysis.metrics``, typed: which system's series each signal is read from.

A ``preset`` names a system the operator knows the series of: ``contract`` (the metrics contract,
the default), ``istio``, ``ingress-nginx`` (requests, errors, latency) and ``cadvisor`` (CPU, memory,
pods and container faults from cAdvisor and kube-state-metrics; requests and latency from the
contract). ``resources`` says where CPU, memory, pods and faults come from when the preset is a
request/latency one: ``process`` (the contract's process collector) or ``cadvisor``; Istio and
ingress-nginx default to ``cadvisor``, because their users' workloads rarely carry the contract's
``track`` label. ``templates`` override single signals with PromQL of the team's own, checked by
``promql.check``. The PromQL of the presets lives in ``ferrocanary.metrics.presets``.
"""

from __future__ import annotations

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
class MetricsSpec:
    """Where each signal comes from; ``templates`` hold only the signals the spec overrides."""

    preset: str = "contract"
    resources: str = "process"
    templates: Mapping[str, str] = field(default_factory=dict)
    latency_unit: str | None = None  # None: the preset's (Istio: milliseconds), else seconds

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
    unknown = sorted(set(raw) - {"preset", "resources", "templates", "latencyUnit"})
    if unknown:
        raise ValueError(
            f"{where}.{unknown[0]}: unknown field; known: preset, resources, templates, latencyUnit"
        )
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
        preset=preset, resources=resources, templates=_templates(raw, where), latency_unit=unit
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


def check_arms(metrics: MetricsSpec, baseline_service: str | None, candidate_service: str | None) -> None:
    """A preset or template that names the arm's Service needs both Services in the spec."""
    if not metrics.uses_service():
        return
    for arm, service in (("baseline", baseline_service), ("candidate", candidate_service)):
        if not service:
            raise ValueError(
                f"spec.{arm}.service: required by spec.analysis.metrics (its queries name each arm's Service)"
            )
