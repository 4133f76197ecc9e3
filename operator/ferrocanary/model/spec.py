"""The RustCanary spec, parsed once into typed values: the only place that reads ``.spec`` keys.

The operator, the report, the CLI and the routers take a ``CanarySpec`` instead of the raw object, so
a default or a field name lives in one place. ``parse`` raises ValueError naming the field (as the
CRD's CEL rules do) for what the policy and the judge cannot act on: steps, promotion mode, analysis
settings and the Prometheus durations. The rest is read leniently and checked by its consumer, which
knows what a problem there means: a router that cannot be built is a routing condition (the canary
waits for its route), a missing Prometheus address is a hold.

Each router's own block (``spec.trafficRouting.<provider>``) is handed to that router unparsed: the
provider owns its configuration, so adding a router stays one module and one registry line.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ferrocanary.model import analysis
from ferrocanary.model import metrics as metrics_spec

DEFAULT_WEIGHTS: tuple[int, ...] = (5, 10, 25, 50)
DEFAULT_MIN_DWELL = "5m"
DEFAULT_MAX_DURATION = "2h"
DEFAULT_PROGRESS_DEADLINE = "10m"
DEFAULT_PROMETHEUS_TIMEOUT = "10s"
DEFAULT_PROMETHEUS_LAG = "30s"
DEFAULT_TOKEN_KEY = "token"


@dataclass(frozen=True)
class Plan:
    """The rollout settings of a RustCanary spec (durations in seconds)."""

    weights: tuple[int, ...] = DEFAULT_WEIGHTS
    min_dwell_seconds: float = 300.0
    max_duration_seconds: float = 7200.0
    manual_promotion: bool = False
    require_final_step: bool = False
    # How long the candidate may stay short of available replicas before the canary rolls back.
    progress_deadline_seconds: float = 600.0

    def __post_init__(self) -> None:
        if not self.weights or any(not 1 <= w <= 100 for w in self.weights):
            raise ValueError(f"spec.steps.weights must be within 1..100, got {list(self.weights)}")
        if any(b <= a for a, b in zip(self.weights, self.weights[1:], strict=False)):
            raise ValueError(f"spec.steps.weights must be strictly increasing, got {list(self.weights)}")


@dataclass(frozen=True)
class Arm:
    """One build: its Deployment and, for routers that split between Services, its Service."""

    deployment: str = ""
    service: str | None = None


@dataclass(frozen=True)
class ServicePort:
    """``spec.service``: the Service both builds sit behind (the replicas router) and its port."""

    name: str | None = None
    port: int | None = None


@dataclass(frozen=True)
class PrometheusSpec:
    """``spec.analysis.prometheus``: where the signals come from and how long to wait for them."""

    address: str = ""
    secret_name: str | None = None  # the token's Secret in the canary's namespace
    secret_key: str = DEFAULT_TOKEN_KEY
    timeout_seconds: float = 10.0
    lag_seconds: float = 30.0  # blocks end this long before now, so every scrape is in
    verify_tls: bool = True


@dataclass(frozen=True)
class CanarySpec:
    """A RustCanary's ``.spec``, typed."""

    baseline: Arm = Arm()
    candidate: Arm = Arm()
    service: ServicePort = ServicePort()
    # provider key -> that provider's own block; the registry checks that exactly one known key is set
    traffic_routing: Mapping[str, Any] = field(default_factory=dict)
    plan: Plan = Plan()
    settings: analysis.AnalysisSettings = field(default_factory=analysis.AnalysisSettings)
    prometheus: PrometheusSpec = PrometheusSpec()
    selectors: Mapping[str, str] = field(default_factory=dict)  # keyed as in the CRD; empty: defaults
    metrics: metrics_spec.MetricsSpec = field(default_factory=metrics_spec.MetricsSpec)  # analysis.metrics
    scale_down_baseline: bool = False  # after a promotion
    scale_down_candidate: bool = False  # after a rollback
    # ``spec.analysis`` verbatim: it travels with a recording, so ``ferrocanary analyze`` re-reads it.
    analysis_source: Mapping[str, Any] = field(default_factory=dict)


# Kubernetes object names (API conventions): a DNS-1123 subdomain for most objects, an RFC 1035
# label for Services. Checked here as well as by the CRD, because every name ends up in an API path
# and an old CRD (or none, in tests and `ferrocanary analyze`) must not let `../` through.
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SERVICE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_ADDRESS = re.compile(r"https?://([-a-zA-Z0-9._~%]+|\[[0-9a-fA-F:.]+\])(:[0-9]{1,5})?([/?#][!-~]*)?")


def object_name(value: Any, field: str) -> str:
    """``value`` if it is a valid object name (DNS-1123 subdomain, at most 253 characters)."""
    if not isinstance(value, str) or len(value) > 253 or not _SUBDOMAIN.fullmatch(value):
        raise ValueError(f"{field}: must be a Kubernetes object name (lower-case DNS-1123), got {value!r}")
    return value


def service_name(value: Any, field: str) -> str:
    """``value`` if it is a valid Service name (RFC 1035 label, at most 63 characters)."""
    if not isinstance(value, str) or len(value) > 63 or not _SERVICE.fullmatch(value):
        raise ValueError(f"{field}: must be a Service name (lower-case RFC 1035 label), got {value!r}")
    return value


def _secret_key(value: Any, field: str) -> str:
    if not isinstance(value, str) or len(value) > 253 or not _SECRET_KEY.fullmatch(value):
        raise ValueError(f"{field}: must be a Secret key (letters, digits, '-', '_', '.'), got {value!r}")
    return value


def _section(spec: Mapping[str, Any], key: str, where: str = "spec") -> Mapping[str, Any]:
    value = spec.get(key)
    if value is None or (not value and isinstance(value, str | list)):
        return {}  # absent, or written empty ("" or []): the defaults, as Kubernetes reads an empty field
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}.{key}: expected an object")
    return value


def _arm(spec: Mapping[str, Any], key: str) -> Arm:
    section = _section(spec, key)
    deployment = section.get("deployment")
    service = section.get("service")
    return Arm(
        "" if deployment is None else object_name(deployment, f"spec.{key}.deployment"),
        None if service is None else service_name(service, f"spec.{key}.service"),
    )


def _service(spec: Mapping[str, Any]) -> ServicePort:
    section = _section(spec, "service")
    name, port = section.get("name"), section.get("port")
    return ServicePort(
        None if name is None else service_name(name, "spec.service.name"),
        port if isinstance(port, int) and not isinstance(port, bool) else None,
    )


def parse_plan(spec: Mapping[str, Any]) -> Plan:
    """Steps, dwell, time limit and promotion mode; ValueError naming the field when malformed."""
    steps = _section(spec, "steps")
    promotion = _section(spec, "promotion")
    raw_weights = steps.get("weights", DEFAULT_WEIGHTS)
    if not isinstance(raw_weights, list | tuple) or not all(
        isinstance(w, int) and not isinstance(w, bool) for w in raw_weights
    ):
        raise ValueError(f"spec.steps.weights: expected a list of integers, got {raw_weights!r}")
    min_dwell = analysis.parse_duration(steps.get("minDwell", DEFAULT_MIN_DWELL), "spec.steps.minDwell")
    max_duration = analysis.parse_duration(
        _section(spec, "analysis").get("maxDuration", DEFAULT_MAX_DURATION), "spec.analysis.maxDuration"
    )
    progress_deadline = analysis.parse_duration(
        spec.get("progressDeadline", DEFAULT_PROGRESS_DEADLINE), "spec.progressDeadline"
    )
    mode = promotion.get("mode", "auto")
    if mode not in ("auto", "manual"):
        raise ValueError(f"spec.promotion.mode: expected auto or manual, got {mode!r}")
    return Plan(
        weights=tuple(raw_weights),
        min_dwell_seconds=min_dwell,
        max_duration_seconds=max_duration,
        manual_promotion=mode == "manual",
        require_final_step=bool(promotion.get("requireFinalStep", False)),
        progress_deadline_seconds=progress_deadline,
    )


def parse_prometheus(analysis_spec: Mapping[str, Any]) -> PrometheusSpec:
    """``spec.analysis.prometheus``; durations are checked here, the address by the source that uses it."""
    where = "spec.analysis.prometheus"
    prom = _section(analysis_spec, "prometheus", "spec.analysis")
    ref = prom.get("secretRef")
    ref = ref if isinstance(ref, Mapping) else {}
    timeout = analysis.parse_duration(prom.get("timeout", DEFAULT_PROMETHEUS_TIMEOUT), f"{where}.timeout")
    if timeout <= 0:
        raise ValueError(f"{where}.timeout: must be > 0, got {prom.get('timeout')!r}")
    address = prom.get("address")
    address = address if isinstance(address, str) else ""
    if address and "@" in address.split("/", 3)[2 if "//" in address else 0]:
        # Credentials in a URL end up in logs and messages; a token goes in secretRef.
        raise ValueError(f"{where}.address: must not carry credentials (user:password@); use secretRef")
    if address and not _ADDRESS.fullmatch(address):
        # The CRD's pattern, again: printable ASCII only (it is echoed in status and Events).
        raise ValueError(f"{where}.address: must be an http(s) URL of printable ASCII, got {address!r}")
    return PrometheusSpec(
        address=address,
        secret_name=object_name(ref.get("name"), f"{where}.secretRef.name") if ref else None,
        secret_key=_secret_key(ref.get("key", DEFAULT_TOKEN_KEY), f"{where}.secretRef.key"),
        timeout_seconds=timeout,
        lag_seconds=analysis.parse_duration(prom.get("lag", DEFAULT_PROMETHEUS_LAG), f"{where}.lag"),
        verify_tls=not bool(prom.get("insecureSkipVerify")),
    )


# One PromQL label matcher: a label name, an operator, a double-quoted value without control
# characters. A selector is a comma-separated list of them (no braces): nothing else can be spliced
# into the operator's queries (a `}` would end the matcher and start a query of the tenant's own).
_MATCHER = r'\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"([^"\\\x00-\x1f]|\\[^\x00-\x1f])*"\s*'
_MATCHERS = re.compile(f"({_MATCHER}(,{_MATCHER})*)?")
SELECTOR_KEYS: tuple[str, ...] = ("baseline", "candidate", "baselinePods", "candidatePods")


def label_matchers(value: Any, field: str) -> str:
    """``value`` if it is a comma-separated list of PromQL label matchers (without braces)."""
    if not isinstance(value, str) or len(value) > 1024 or not _MATCHERS.fullmatch(value):
        raise ValueError(
            f'{field}: must be PromQL label matchers like namespace="shop",track="baseline", got {value!r}'
        )
    return value


def _selectors(analysis_spec: Mapping[str, Any]) -> dict[str, str]:
    given = _section(analysis_spec, "selectors", "spec.analysis")
    unknown = sorted(set(given) - set(SELECTOR_KEYS))
    if unknown:
        raise ValueError(f"spec.analysis.selectors.{unknown[0]}: unknown; known: {', '.join(SELECTOR_KEYS)}")
    where = "spec.analysis.selectors"
    return {key: label_matchers(value, f"{where}.{key}") for key, value in given.items() if value}


def parse(spec: Mapping[str, Any] | None) -> CanarySpec:
    """The typed spec; ValueError naming the field for anything the policy or the judge cannot use."""
    spec = spec or {}
    analysis_spec = _section(spec, "analysis")
    plan, prometheus = parse_plan(spec), parse_prometheus(analysis_spec)
    if prometheus.lag_seconds >= plan.min_dwell_seconds:
        # Otherwise a step could end before any block at its weight is even fetched.
        raise ValueError(
            f"spec.analysis.prometheus.lag: must be shorter than spec.steps.minDwell "
            f"({prometheus.lag_seconds:g}s >= {plan.min_dwell_seconds:g}s)"
        )
    routing = parse_routing(spec)
    settings = analysis.settings_from_spec(spec.get("analysis"))
    metrics = metrics_spec.parse(analysis_spec)
    metrics_spec.check_arms(metrics, routing.baseline.service, routing.candidate.service)
    metrics_spec.check_names(metrics, [k.name for k in settings.kpis] + [g.name for g in settings.guards])
    return dataclasses.replace(
        routing,
        plan=plan,
        settings=settings,
        prometheus=prometheus,
        selectors=_selectors(analysis_spec),
        metrics=metrics,
        analysis_source=dict(analysis_spec),
    )


#: What a running canary claims, by kind: its two Deployments and the object its router moves.
_ROUTE_OBJECTS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "gatewayAPI": ("HTTPRoute", ("httpRoute",)),
    "istio": ("VirtualService", ("virtualService", "name")),
    "nginx": ("Ingress", ("ingress",)),
}


def claims(spec: CanarySpec) -> frozenset[tuple[str, str]]:
    """(kind, name) of every object this canary acts on: two canaries that share one must not both
    run (each would move the other's weights, or scale down the other's build)."""
    claimed = {("Deployment", d) for d in (spec.baseline.deployment, spec.candidate.deployment) if d}
    for provider, (kind, keys) in _ROUTE_OBJECTS.items():
        value: Any = spec.traffic_routing.get(provider)
        for key in keys:
            value = value.get(key) if isinstance(value, Mapping) else None
        if isinstance(value, str) and value:
            claimed.add((kind, value))
    return frozenset(claimed)


def parse_routing(spec: Mapping[str, Any] | None) -> CanarySpec:
    """Only what is needed to put traffic in an end state: the builds, the Service, the router.

    For a spec that ``parse`` refuses: its traffic must still go back to the baseline (or finish a
    promotion), which needs none of the analysis settings. Raises ValueError only when one of these
    sections is not an object at all.
    """
    spec = spec or {}
    return CanarySpec(
        baseline=_arm(spec, "baseline"),
        candidate=_arm(spec, "candidate"),
        service=_service(spec),
        traffic_routing=_section(spec, "trafficRouting"),
        scale_down_baseline=bool(_section(spec, "promotion").get("scaleDownBaseline")),
        scale_down_candidate=bool(_section(spec, "rollback").get("scaleDownCandidate")),
    )
