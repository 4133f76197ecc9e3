"""Istio routing: weights on the route destinations of a VirtualService (networking.istio.io/v1).

The team owns the VirtualService; its http routes send traffic to the baseline's Service (a destination
whose ``host`` is ``spec.baseline.service``, short or fully qualified). The routes split are the ones
``trafficRouting.istio.virtualService.routes`` names, or by default every http route with a baseline
destination. ``ensure`` adds the candidate's Service as a second destination at weight 0 next to the
baseline (same port, same host form) and refuses a route with any other destination: Istio wants the
weights of a route to add up to 100, so ferrocanary must own the whole split of each route it moves.
``set_weights`` writes baseline = 100 - w and candidate = w, and ``finalize`` either leaves the
candidate at 100 (promoted) or removes the candidate destination again with the baseline at 100
(rolled back), as ``gateway_api`` does with backendRefs. Writes are read-modify-replace with the
resourceVersion (``protocol.replace_object``).

Not supported: DestinationRule subsets (one host, two subsets). Destinations are told apart by host
only, so each build needs its own Service, as with the Gateway API router.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ferrocanary.kube import rest
from ferrocanary.model.decisions import Ending
from ferrocanary.routing import protocol

PROVIDER = "istio"
GROUP = "networking.istio.io"
VERSION = "v1"
FIELD = "spec.trafficRouting.istio.virtualService"


def virtual_service_path(namespace: str, name: str) -> str:
    return (
        f"/apis/{GROUP}/{VERSION}/namespaces/{rest.segment(namespace)}/virtualservices/{rest.segment(name)}"
    )


def is_host(host: Any, service: str, namespace: str) -> bool:
    """Whether a destination host names ``service`` in ``namespace`` (short, ``svc.ns`` or FQDN)."""
    if not isinstance(host, str):
        return False
    return host in (service, f"{service}.{namespace}") or host.startswith(f"{service}.{namespace}.svc")


def _host(destination: Mapping[str, Any]) -> Any:
    return (destination.get("destination") or {}).get("host")


class IstioRouter:
    """A ``TrafficRouter`` over the http routes of one VirtualService."""

    def __init__(
        self,
        api: rest.JsonApi,
        target: protocol.RouteTarget,
        virtual_service: str,
        routes: Sequence[str] = (),
    ) -> None:
        self._api = api
        self._ns = target.namespace
        self._vs = virtual_service
        self._routes = tuple(routes)
        self._baseline, self._candidate = protocol.two_services(target, PROVIDER)

    @property
    def provider(self) -> str:
        return PROVIDER

    @property
    def _what(self) -> str:
        return f"VirtualService {self._ns}/{self._vs} ({FIELD}.name)"

    def _is_baseline(self, destination: Mapping[str, Any]) -> bool:
        return is_host(_host(destination), self._baseline, self._ns)

    def _is_candidate(self, destination: Mapping[str, Any]) -> bool:
        return is_host(_host(destination), self._candidate, self._ns)

    def _split_routes(self, vs: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The http routes this canary splits; each must send to the baseline and nothing but the two."""
        http: list[dict[str, Any]] = list((vs.get("spec") or {}).get("http") or [])
        if self._routes:
            by_name = {route.get("name"): route for route in http}
            chosen = []
            for index, name in enumerate(self._routes):
                if name not in by_name:
                    raise protocol.RoutingError(
                        f"{FIELD}.routes[{index}]: {self._what} has no http route named {name!r}"
                    )
                chosen.append(by_name[name])
        else:
            chosen = [route for route in http if any(self._is_baseline(d) for d in route.get("route") or [])]
            if not chosen:
                raise protocol.RoutingError(
                    f"{FIELD}.name: {self._what} has no http route "
                    f"with a destination to host {self._baseline}"
                )
        for route in chosen:
            name = route.get("name", f"#{http.index(route)}")
            destinations = route.get("route") or []
            baseline = [d for d in destinations if self._is_baseline(d)]
            others = [
                _host(d) for d in destinations if not self._is_baseline(d) and not self._is_candidate(d)
            ]
            if len(baseline) != 1 or others or sum(map(self._is_candidate, destinations)) > 1:
                raise protocol.RoutingError(
                    f"{FIELD}: http route {name} of {self._what} must have exactly one destination to host "
                    f"{self._baseline} and at most one to {self._candidate}; it has "
                    f"{[_host(d) for d in destinations]}"
                )
        return chosen

    def _set(self, vs: dict[str, Any], baseline: int, candidate: int | None) -> None:
        """Weights on every split route; ``candidate=None`` removes the candidate destination."""
        for route in self._split_routes(vs):
            destinations: list[dict[str, Any]] = route["route"]
            base = next(d for d in destinations if self._is_baseline(d))
            base["weight"] = baseline
            if candidate is None:
                route["route"] = [d for d in destinations if not self._is_candidate(d)]
                continue
            cand = next((d for d in destinations if self._is_candidate(d)), None)
            if cand is None:
                cand = self._candidate_beside(base)
                destinations.append(cand)
            cand["weight"] = candidate

    def _candidate_beside(self, base: Mapping[str, Any]) -> dict[str, Any]:
        """The candidate's destination, in the same host form and on the same port as the baseline's."""
        base_dest = base["destination"]
        host = self._candidate + str(base_dest["host"])[len(self._baseline) :]
        destination: dict[str, Any] = {"host": host}
        if "port" in base_dest:
            destination["port"] = dict(base_dest["port"])
        return {"destination": destination, "weight": 0}

    def _weights(self, vs: Mapping[str, Any]) -> protocol.Weights:
        destinations = self._split_routes(vs)[0]["route"]
        # Istio lets a lone destination omit its weight: it then takes all the traffic.
        implied = 100 if len(destinations) == 1 else 0
        baseline = sum(int(d.get("weight", implied)) for d in destinations if self._is_baseline(d))
        candidate = sum(int(d.get("weight", implied)) for d in destinations if self._is_candidate(d))
        if baseline + candidate == 0:
            return protocol.Weights(0.0, 0.0)
        return protocol.Weights.of_candidate(100.0 * candidate / (baseline + candidate))

    def _update(self, baseline: int | None, candidate: int | None) -> dict[str, Any]:
        path = virtual_service_path(self._ns, self._vs)

        def change(vs: dict[str, Any]) -> None:
            if baseline is None:  # ensure: add the candidate at 0 only where it is missing
                for route in self._split_routes(vs):
                    if not any(self._is_candidate(d) for d in route["route"]):
                        base = next(d for d in route["route"] if self._is_baseline(d))
                        base["weight"] = 100
                        route["route"].append(self._candidate_beside(base))
                return
            self._set(vs, baseline, candidate)

        return protocol.replace_object(self._api, path, self._what, change)

    def ensure(self) -> None:
        self._update(None, None)

    def get_weights(self) -> protocol.Weights:
        return self._weights(
            protocol.read_object(self._api, virtual_service_path(self._ns, self._vs), self._what)
        )

    def set_weights(self, candidate_percent: int) -> protocol.Weights:
        percent = max(0, min(100, int(candidate_percent)))
        return self._weights(self._update(100 - percent, percent))

    def finalize(self, ending: Ending) -> protocol.Weights:
        if ending is Ending.PROMOTED:
            return self._weights(self._update(0, 100))
        return self._weights(self._update(100, None))


def from_spec(target: protocol.RouteTarget, config: Mapping[str, Any], api: rest.JsonApi) -> IstioRouter:
    vs = config.get("virtualService") or {}
    name = vs.get("name") if isinstance(vs, Mapping) else None
    if not isinstance(name, str) or not name:
        raise protocol.RoutingError(f"{FIELD}.name is required")
    routes = vs.get("routes") or []
    if not isinstance(routes, list) or not all(isinstance(r, str) and r for r in routes):
        raise protocol.RoutingError(f"{FIELD}.routes must be a list of http route names")
    return IstioRouter(api, target, protocol.checked_name(name, f"{FIELD}.name"), routes)
