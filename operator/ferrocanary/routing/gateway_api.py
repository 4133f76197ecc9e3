"""Gateway API routing: weights on the backendRefs of an HTTPRoute (gateway.networking.k8s.io/v1).

The team owns the HTTPRoute; its rules send traffic to the baseline's Service. ``ensure`` adds the
candidate's Service as a second backendRef at weight 0 next to every baseline backendRef (same port),
``set_weights`` writes baseline = 100 - w and candidate = w on all those rules, and ``finalize``
either leaves the candidate at 100 (promoted) or removes the candidate backendRef again (rolled back),
so the route ends as the team wrote it. Every write is a read-modify-replace carrying the
resourceVersion, retried on a conflict (``protocol.replace_object``), so concurrent edits by others
are never overwritten.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ferrocanary.kube import rest
from ferrocanary.model.decisions import Ending
from ferrocanary.routing import protocol

PROVIDER = "gatewayAPI"
GROUP = "gateway.networking.k8s.io"
VERSION = "v1"


def route_path(namespace: str, name: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{rest.segment(namespace)}/httproutes/{rest.segment(name)}"


def _is_service(ref: Mapping[str, Any], name: str, namespace: str) -> bool:
    # backendRefs default to core Services in the route's namespace.
    return (
        ref.get("name") == name
        and ref.get("group", "") in ("", "core")
        and ref.get("kind", "Service") == "Service"
        and ref.get("namespace", namespace) == namespace
    )


def _weight(ref: Mapping[str, Any]) -> int:
    return int(ref.get("weight", 1))  # the Gateway API default weight is 1


class GatewayApiRouter:
    """A ``TrafficRouter`` over one HTTPRoute."""

    def __init__(self, api: rest.JsonApi, target: protocol.RouteTarget, http_route: str) -> None:
        self._api = api
        self._ns = target.namespace
        self._route = http_route
        self._baseline, self._candidate = protocol.two_services(target, PROVIDER)

    @property
    def provider(self) -> str:
        return PROVIDER

    @property
    def _what(self) -> str:
        return f"HTTPRoute {self._ns}/{self._route} (spec.trafficRouting.gatewayAPI.httpRoute)"

    def _read(self) -> dict[str, Any]:
        return protocol.read_object(self._api, route_path(self._ns, self._route), self._what)

    def _rules(self, route: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The rules that send traffic to the baseline Service (the ones this canary splits)."""
        rules = [
            rule
            for rule in route.get("spec", {}).get("rules", []) or []
            if any(_is_service(ref, self._baseline, self._ns) for ref in rule.get("backendRefs", []) or [])
        ]
        if not rules:
            raise protocol.RoutingError(
                f"HTTPRoute {self._ns}/{self._route} has no rule "
                f"with a backendRef to Service {self._baseline}"
            )
        return rules

    def _update(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        return protocol.replace_object(self._api, route_path(self._ns, self._route), self._what, change)

    def _set(self, route: dict[str, Any], baseline: int, candidate: int | None) -> None:
        """Weights on every split rule; ``candidate=None`` removes the candidate backendRef."""
        for rule in self._rules(route):
            refs: list[dict[str, Any]] = rule["backendRefs"]
            base_ref = next(r for r in refs if _is_service(r, self._baseline, self._ns))
            cand = [r for r in refs if _is_service(r, self._candidate, self._ns)]
            if candidate is None:
                rule["backendRefs"] = [r for r in refs if not _is_service(r, self._candidate, self._ns)]
                base_ref["weight"] = baseline
                continue
            if not cand:
                new_ref: dict[str, Any] = {"name": self._candidate, "weight": 0}
                if "port" in base_ref:
                    new_ref["port"] = base_ref["port"]
                refs.append(new_ref)
                cand = [new_ref]
            base_ref["weight"] = baseline
            for ref in cand:
                ref["weight"] = candidate

    def _weights(self, route: Mapping[str, Any]) -> protocol.Weights:
        rule = self._rules(route)[0]
        refs = rule["backendRefs"]
        baseline = sum(_weight(r) for r in refs if _is_service(r, self._baseline, self._ns))
        candidate = sum(_weight(r) for r in refs if _is_service(r, self._candidate, self._ns))
        if baseline + candidate == 0:
            return protocol.Weights(0.0, 0.0)
        return protocol.Weights.of_candidate(100.0 * candidate / (baseline + candidate))

    def ensure(self) -> None:
        def add_candidate(route: dict[str, Any]) -> None:
            for rule in self._rules(route):
                refs = rule["backendRefs"]
                if not any(_is_service(r, self._candidate, self._ns) for r in refs):
                    base_ref = next(r for r in refs if _is_service(r, self._baseline, self._ns))
                    new_ref: dict[str, Any] = {"name": self._candidate, "weight": 0}
                    if "port" in base_ref:
                        new_ref["port"] = base_ref["port"]
                    refs.append(new_ref)

        self._update(add_candidate)

    def get_weights(self) -> protocol.Weights:
        return self._weights(self._read())

    def set_weights(self, candidate_percent: int) -> protocol.Weights:
        percent = max(0, min(100, int(candidate_percent)))
        return self._weights(self._update(lambda route: self._set(route, 100 - percent, percent)))

    def finalize(self, ending: Ending) -> protocol.Weights:
        if ending is Ending.PROMOTED:
            return self._weights(self._update(lambda route: self._set(route, 0, 100)))
        return self._weights(self._update(lambda route: self._set(route, 100, None)))


def from_spec(target: protocol.RouteTarget, config: Mapping[str, Any], api: rest.JsonApi) -> GatewayApiRouter:
    name = config.get("httpRoute")
    if not isinstance(name, str) or not name:
        raise protocol.RoutingError("spec.trafficRouting.gatewayAPI.httpRoute is required")
    return GatewayApiRouter(
        api, target, protocol.checked_name(name, "spec.trafficRouting.gatewayAPI.httpRoute")
    )
