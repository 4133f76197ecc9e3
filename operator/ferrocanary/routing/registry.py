"""The one module that names every traffic router: spec key -> factory.

A RustCanary's ``spec.trafficRouting`` has exactly one key (the CRD's CEL rule says so); the key picks
the provider here. Adding a provider (SMI, ...) is one module with a ``from_spec`` and one line below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ferrocanary.kube import rest
from ferrocanary.model import spec as canary_spec
from ferrocanary.routing import gateway_api, istio, nginx, null, protocol, replicas

Factory = Callable[[protocol.RouteTarget, Mapping[str, Any], rest.JsonApi], protocol.TrafficRouter]

PROVIDERS: Mapping[str, Factory] = {
    gateway_api.PROVIDER: gateway_api.from_spec,
    istio.PROVIDER: istio.from_spec,
    nginx.PROVIDER: nginx.from_spec,
    replicas.PROVIDER: replicas.from_spec,
    null.PROVIDER: null.from_spec,
}


def provider_of(traffic_routing: Mapping[str, Any] | None) -> str:
    """The provider key of ``spec.trafficRouting``; RoutingError unless exactly one known key is set."""
    keys = [key for key in (traffic_routing or {}) if key in PROVIDERS]
    unknown = [key for key in (traffic_routing or {}) if key not in PROVIDERS]
    if unknown:
        raise protocol.RoutingError(
            f"spec.trafficRouting.{unknown[0]}: unknown provider; known: {', '.join(PROVIDERS)}"
        )
    if len(keys) != 1:
        raise protocol.RoutingError(f"spec.trafficRouting: set exactly one of {', '.join(PROVIDERS)}")
    return keys[0]


def target_of(namespace: str, name: str, spec: canary_spec.CanarySpec) -> protocol.RouteTarget:
    return protocol.RouteTarget(
        namespace=namespace,
        canary=name,
        baseline_deployment=spec.baseline.deployment,
        candidate_deployment=spec.candidate.deployment,
        baseline_service=spec.baseline.service,
        candidate_service=spec.candidate.service,
        service=spec.service.name,
        port=spec.service.port,
    )


def build(
    namespace: str, name: str, spec: canary_spec.CanarySpec, api: rest.JsonApi
) -> protocol.TrafficRouter:
    """The router a RustCanary's spec asks for."""
    provider = provider_of(spec.traffic_routing)
    config = spec.traffic_routing.get(provider) or {}
    return PROVIDERS[provider](target_of(namespace, name, spec), config, api)
