"""The operator's own /metrics: where every canary stands, for Grafana and alerting.

Series (labels ``namespace``, ``name``, and ``kpi`` for per-KPI ones; names in queries.py): weight in
percent, the phase as a state set (1 for the current phase, 0 for the others), each KPI's (and guard
rail's) estimate, interval bounds and target on the candidate/baseline ratio scale, its reading as a
state set, its ETA at 50% and 80% probability, the judge's decisions by outcome and the reconcile
duration. The last two are dropped when a canary finishes, everything when it is deleted, so /metrics
does not grow with the canaries an operator has ever seen. Gauges are set from the RustCanary's status
after every tick, so a restarted operator exports the same values as soon as it has seen each object
once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    process_collector,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from ferrocanary.kube import rest
from ferrocanary.metrics import queries
from ferrocanary.model import decisions

READINGS: tuple[str, ...] = ("Pass", "Miss", "Open", "NoData")

REGISTRY = CollectorRegistry()
process_collector.ProcessCollector(registry=REGISTRY)

_CANARY = ("namespace", "name")
_KPI = ("namespace", "name", "kpi")

WEIGHT = Gauge(
    queries.WEIGHT, "Percent of traffic on the candidate (Rust) build.", _CANARY, registry=REGISTRY
)
PHASE = Gauge(
    queries.PHASE,
    "Phase of the canary: 1 for the current phase, 0 otherwise.",
    (*_CANARY, "phase"),
    registry=REGISTRY,
)
KPI_ESTIMATE = Gauge(queries.KPI_ESTIMATE, "KPI estimate, candidate/baseline.", _KPI, registry=REGISTRY)
KPI_LOWER = Gauge(queries.KPI_LOWER, "Lower bound of the KPI's interval.", _KPI, registry=REGISTRY)
KPI_UPPER = Gauge(queries.KPI_UPPER, "Upper bound of the KPI's interval.", _KPI, registry=REGISTRY)
KPI_TARGET = Gauge(queries.KPI_TARGET, "The KPI's target ratio.", _KPI, registry=REGISTRY)
KPI_DECISION = Gauge(
    queries.KPI_DECISION,
    "KPI reading: 1 for the current one (Pass, Miss, Open, NoData), 0 otherwise.",
    (*_KPI, "decision"),
    registry=REGISTRY,
)
KPI_ETA = Gauge(
    queries.KPI_ETA,
    "Estimated seconds until the KPI is decided, at the given probability.",
    (*_KPI, "probability"),
    registry=REGISTRY,
)
DECISIONS = Counter(
    queries.DECISIONS.removesuffix("_total"),
    "Judge decisions by outcome.",
    (*_CANARY, "outcome"),
    registry=REGISTRY,
)
RECONCILE = Histogram(
    queries.RECONCILE_DURATION,
    "Time spent in one reconcile tick.",
    _CANARY,
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


API_REQUESTS = "ferrocanary_api_requests_total"


class _ApiRequests(Collector):
    """``ferrocanary_api_requests_total``: the API server requests this operator sent (counted in kube/)."""

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(
            API_REQUESTS.removesuffix("_total"),
            "Requests this operator sent to the Kubernetes API server (kopf's watches and finalizer writes "
            "excluded), by verb, resource and HTTP status code.",
            labels=("verb", "resource", "code"),
        )
        for (verb, resource, code), count in sorted(rest.REQUESTS.snapshot().items()):
            family.add_metric((verb, resource, code), count)
        yield family


REGISTRY.register(_ApiRequests())

_ARM = (*_CANARY, "arm")
ARM_FIGURES = {
    field: Gauge(metric, text, _ARM, registry=REGISTRY)
    for field, (metric, text) in queries.ARM_FIGURES.items()
}
ARM_LATENCY = Gauge(
    queries.ARM_LATENCY,
    "The build's latency quantile over the newest block.",
    (*_ARM, "quantile"),
    registry=REGISTRY,
)

_OUTCOMES = tuple(d.value for d in decisions.Decision)  # the decisions counter's ``outcome`` values
_PER_KPI = (KPI_ESTIMATE, KPI_LOWER, KPI_UPPER, KPI_TARGET)
_KPI_FIELDS = ("estimate", "lower", "upper", "target")
_known_kpis: dict[tuple[str, str], set[str]] = {}


def _set_or_clear(gauge: Gauge, labels: tuple[str, ...], value: Any) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        gauge.labels(*labels).set(float(value))
    else:
        _remove(gauge, labels)


def _remove(metric: Any, labels: tuple[str, ...]) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)


def publish(namespace: str, name: str, status: Mapping[str, Any], phases: Iterable[str]) -> None:
    """Set every gauge of one canary from its status (KPIs that disappeared are removed)."""
    canary = (namespace, name)
    _set_or_clear(WEIGHT, canary, status.get("weight"))
    current = status.get("phase")
    for phase in phases:
        PHASE.labels(namespace, name, phase).set(1.0 if phase == current else 0.0)
    seen: set[str] = set()
    for item in [*(status.get("kpis") or []), *(status.get("guards") or [])]:
        kpi = str(item.get("name", ""))
        if not kpi:
            continue
        seen.add(kpi)
        labels = (namespace, name, kpi)
        for gauge, field in zip(_PER_KPI, _KPI_FIELDS, strict=True):
            _set_or_clear(gauge, labels, item.get(field))
        for reading in READINGS:
            KPI_DECISION.labels(*labels, reading).set(1.0 if item.get("decision") == reading else 0.0)
        _set_or_clear(KPI_ETA, (*labels, "0.5"), item.get("eta50Seconds"))
        _set_or_clear(KPI_ETA, (*labels, "0.8"), item.get("eta80Seconds"))
    for gone in _known_kpis.get(canary, set()) - seen:
        _forget_kpi(namespace, name, gone)
    _known_kpis[canary] = seen
    _publish_arms(namespace, name, status.get("arms") or {})


def _publish_arms(namespace: str, name: str, arms: Mapping[str, Any]) -> None:
    """Each build's figures (status.arms): a figure the newest block lacks is removed, not zeroed."""
    for arm in ("baseline", "candidate"):
        figures = arms.get(arm) or {}
        for field, gauge in ARM_FIGURES.items():
            _set_or_clear(gauge, (namespace, name, arm), figures.get(field))
        for field, quantile in queries.ARM_QUANTILES.items():
            _set_or_clear(ARM_LATENCY, (namespace, name, arm, quantile), figures.get(field))


def _forget_kpi(namespace: str, name: str, kpi: str) -> None:
    labels = (namespace, name, kpi)
    for gauge in _PER_KPI:
        _remove(gauge, labels)
    for reading in READINGS:
        _remove(KPI_DECISION, (*labels, reading))
    for probability in ("0.5", "0.8"):
        _remove(KPI_ETA, (*labels, probability))


def count_decision(namespace: str, name: str, outcome: str) -> None:
    DECISIONS.labels(namespace, name, outcome).inc()


def observe_reconcile(namespace: str, name: str, seconds: float) -> None:
    RECONCILE.labels(namespace, name).observe(seconds)


def forget_activity(namespace: str, name: str) -> None:
    """Drop a canary's per-look series (decisions by outcome, tick durations): it finished."""
    for outcome in _OUTCOMES:
        _remove(DECISIONS, (namespace, name, outcome))
    _remove(RECONCILE, (namespace, name))


def forget(namespace: str, name: str, phases: Iterable[str]) -> None:
    """Drop every series of a deleted canary."""
    forget_activity(namespace, name)
    _remove(WEIGHT, (namespace, name))
    for phase in phases:
        _remove(PHASE, (namespace, name, phase))
    for kpi in _known_kpis.pop((namespace, name), set()):
        _forget_kpi(namespace, name, kpi)
    _publish_arms(namespace, name, {})  # every figure removed


def serve(port: int, address: str = "0.0.0.0") -> None:
    """Expose REGISTRY on http://address:port/metrics (a daemon thread)."""
    start_http_server(port, addr=address, registry=REGISTRY)
