"""Gateway API routing: weights on the backendRefs of an HTTPRoute (gateway.networking.k8s.io/v1).

The team owns the HTTPRoute; its rules send traffic to the baseline's Service, maybe beside other
backends (a legacy build at 20 %, say). The canary splits only the baseline's share: before its
first write the router records the weights the team wrote in the annotation ``TEAM_WEIGHTS`` on
the route, then at w % gives the baseline ``B x (100 - w)``, the candidate ``B x w`` and every
other backend ``its weight x 100`` (B: the baseline's recorded weight), so the others keep their
share. ``ensure`` adds the candidate's Service at weight 0 next to every baseline backendRef (same
port); ``finalize`` either leaves the candidate with the baseline's share (promoted; the
record stays, naming its canary, so a retry writes the same weights) or removes the candidate
backendRef and puts back exactly the weights the team wrote (rolled back), then drops the record.
Every write is a read-modify-replace carrying the resourceVersion, retried on a conflict
(``protocol.replace_object``), so concurrent edits by others are never overwritten.
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
TEAM_WEIGHTS = protocol.TEAM_WEIGHTS


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


def _team_weight(written: Mapping[str, int | None], ref: Mapping[str, Any]) -> int:
    recorded = written.get(str(ref.get("name")), ref.get("weight"))
    return 1 if recorded is None else int(recorded)  # the Gateway API default weight is 1


class GatewayApiRouter:
    """A ``TrafficRouter`` over one HTTPRoute."""

    def __init__(self, api: rest.JsonApi, target: protocol.RouteTarget, http_route: str) -> None:
        self._api = api
        self._ns = target.namespace
        self._route = http_route
        self._baseline, self._candidate = protocol.two_services(target, PROVIDER)
        self._canary = target.canary

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

    def _split_rules(self, route: Mapping[str, Any]) -> list[tuple[int, dict[str, Any]]]:
        self._rules(route)  # raises, naming the route, when no rule reaches the baseline
        return [
            (i, rule)
            for i, rule in enumerate(route.get("spec", {}).get("rules", []) or [])
            if any(_is_service(ref, self._baseline, self._ns) for ref in rule.get("backendRefs", []) or [])
        ]

    def _team_weights(self, route: dict[str, Any]) -> protocol.TeamWeights:
        """The weights the team wrote, recorded on the route at the canary's first write."""
        return protocol.team_weights(
            route,
            self._canary,
            lambda: {
                str(i): {
                    str(r.get("name")): r.get("weight")
                    for r in rule.get("backendRefs", [])
                    if not _is_service(r, self._candidate, self._ns)
                }
                for i, rule in self._split_rules(route)
            },
        )

    def _set(self, route: dict[str, Any], baseline: int, candidate: int | None) -> None:
        """Weights on every split rule; ``candidate=None`` removes the candidate backendRef and puts
        the team's weights back. Other backends keep their share (see the module docstring)."""
        team = self._team_weights(route)
        for index, rule in self._split_rules(route):
            written = team.get(str(index), {})
            refs: list[dict[str, Any]] = rule["backendRefs"]
            if candidate is None:
                rule["backendRefs"] = [r for r in refs if not _is_service(r, self._candidate, self._ns)]
                for ref in rule["backendRefs"]:
                    protocol.put_back_weight(ref, str(ref.get("name")), written)
                continue
            self._split(refs, written, baseline, candidate)
        if candidate is None:
            protocol.forget_team_weights(route)

    def _split(
        self, refs: list[dict[str, Any]], written: Mapping[str, int | None], baseline: int, candidate: int
    ) -> None:
        base_ref = next(r for r in refs if _is_service(r, self._baseline, self._ns))
        share = _team_weight(written, base_ref) or 1  # a baseline the team weighted 0 still gets split
        cand = [r for r in refs if _is_service(r, self._candidate, self._ns)]
        if not cand:
            new_ref: dict[str, Any] = {"name": self._candidate, "weight": 0}
            if "port" in base_ref:
                new_ref["port"] = base_ref["port"]
            refs.append(new_ref)
            cand = [new_ref]
        for ref in refs:
            if ref is base_ref:
                ref["weight"] = share * baseline
            elif any(ref is c for c in cand):
                ref["weight"] = share * candidate
            elif str(ref.get("name")) in written:
                ref["weight"] = _team_weight(written, ref) * 100

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
            # The record stays (a retried promotion writes the same weights); the next canary on
            # this route records its own.
            return self._weights(self._update(lambda route: self._set(route, 0, 100)))
        return self._weights(self._update(lambda route: self._set(route, 100, None)))


def from_spec(target: protocol.RouteTarget, config: Mapping[str, Any], api: rest.JsonApi) -> GatewayApiRouter:
    name = config.get("httpRoute")
    if not isinstance(name, str) or not name:
        raise protocol.RoutingError("spec.trafficRouting.gatewayAPI.httpRoute is required")
    return GatewayApiRouter(
        api, target, protocol.checked_name(name, "spec.trafficRouting.gatewayAPI.httpRoute")
    )
