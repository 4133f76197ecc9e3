"""Istio routing: weights on the route destinations of a VirtualService (networking.istio.io/v1).

The team owns the VirtualService; its http routes send traffic to the baseline's Service (a destination
whose ``host`` is ``spec.baseline.service``, short or fully qualified), maybe beside other destinations
(a legacy build at 20, say). The routes split are the ones ``trafficRouting.istio.virtualService.routes``
names, or by default every http route with a baseline destination.

The canary splits only the baseline's share, as with the Gateway API router: before its first write
the router records the weights the team wrote (``protocol.TEAM_WEIGHTS`` annotation), then at w % gives
the candidate round(B x w / 100) and the baseline the rest of B (B: the baseline's recorded weight, 100
for a lone destination without one, as Istio implies), and leaves every other destination as it is, so
the route's weights still add up to 100 as Istio requires. Integer weights quantise the split: callers
record the split ``set_weights`` returns. ``ensure`` adds the candidate's Service at weight 0 beside
the baseline (same port, same host form); ``finalize`` leaves the candidate with the baseline's share
(promoted) or removes the candidate destination and puts back exactly the weights the team wrote
(rolled back). Writes are read-modify-replace with the resourceVersion (``protocol.replace_object``).

Not supported: DestinationRule subsets (one host, two subsets). Destinations are told apart by host
only, so each build needs its own Service, as with the Gateway API router.
"""

from __future__ import annotations

import math
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
        self._canary = target.canary

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

    def _split_routes(self, vs: Mapping[str, Any]) -> list[tuple[int, dict[str, Any]]]:
        """The http routes this canary splits (with their index); each has exactly one baseline."""
        http: list[dict[str, Any]] = list((vs.get("spec") or {}).get("http") or [])
        if self._routes:
            by_name = {route.get("name"): (i, route) for i, route in enumerate(http)}
            chosen = []
            for index, name in enumerate(self._routes):
                if name not in by_name:
                    raise protocol.RoutingError(
                        f"{FIELD}.routes[{index}]: {self._what} has no http route named {name!r}"
                    )
                chosen.append(by_name[name])
        else:
            chosen = [
                (i, route)
                for i, route in enumerate(http)
                if any(self._is_baseline(d) for d in route.get("route") or [])
            ]
            if not chosen:
                raise protocol.RoutingError(
                    f"{FIELD}.name: {self._what} has no http route "
                    f"with a destination to host {self._baseline}"
                )
        for index, route in chosen:
            destinations = route.get("route") or []
            baseline = [d for d in destinations if self._is_baseline(d)]
            if len(baseline) != 1 or sum(map(self._is_candidate, destinations)) > 1:
                raise protocol.RoutingError(
                    f"{FIELD}: http route {route.get('name', f'#{index}')} of {self._what} must have exactly "
                    f"one destination to host {self._baseline} and at most one to {self._candidate}; "
                    f"it has {[_host(d) for d in destinations]}"
                )
        return chosen

    def _team_weights(self, vs: dict[str, Any]) -> protocol.TeamWeights:
        """The weights the team wrote, per split route and destination host (recorded at the first write)."""
        return protocol.team_weights(
            vs,
            self._canary,
            lambda: {
                str(i): {
                    str(_host(d)): d.get("weight")
                    for d in route.get("route") or []
                    if not self._is_candidate(d)
                }
                for i, route in self._split_routes(vs)
            },
        )

    def _share(self, written: Mapping[str, int | None], base: Mapping[str, Any], alone: bool) -> int:
        """The baseline's weight as the team wrote it: what the canary splits."""
        recorded = written.get(str(_host(base)), base.get("weight"))
        if recorded is None:
            return 100 if alone else 0  # Istio: a lone destination takes it all; otherwise 0
        return int(recorded)

    def _set(self, vs: dict[str, Any], candidate: int | None) -> None:
        """The split at ``candidate`` percent on every split route; None removes the candidate
        destination and puts the team's weights back. Other destinations keep their weights."""
        team = self._team_weights(vs)
        for index, route in self._split_routes(vs):
            written = team.get(str(index), {})
            destinations: list[dict[str, Any]] = route["route"]
            if candidate is None:
                route["route"] = [d for d in destinations if not self._is_candidate(d)]
                for destination in route["route"]:
                    protocol.put_back_weight(destination, str(_host(destination)), written)
                continue
            base = next(d for d in destinations if self._is_baseline(d))
            alone = sum(1 for d in destinations if not self._is_candidate(d)) == 1
            share = self._share(written, base, alone=alone)
            if share == 0 and candidate > 0:
                raise protocol.RoutingError(
                    f"{FIELD}: http route {route.get('name', f'#{index}')} of {self._what} gives the "
                    "baseline weight 0: there is no traffic of the baseline's to split"
                )
            cand = next((d for d in destinations if self._is_candidate(d)), None)
            if cand is None:
                cand = self._candidate_beside(base)
                destinations.append(cand)
            cand["weight"] = math.floor(share * candidate / 100 + 0.5)
            base["weight"] = share - cand["weight"]
        if candidate is None:
            protocol.forget_team_weights(vs)

    def _candidate_beside(self, base: Mapping[str, Any]) -> dict[str, Any]:
        """The candidate's destination, in the same host form and on the same port as the baseline's."""
        base_dest = base["destination"]
        host = self._candidate + str(base_dest["host"])[len(self._baseline) :]
        destination: dict[str, Any] = {"host": host}
        if "port" in base_dest:
            destination["port"] = dict(base_dest["port"])
        return {"destination": destination, "weight": 0}

    def _weights(self, vs: Mapping[str, Any]) -> protocol.Weights:
        destinations = self._split_routes(vs)[0][1]["route"]
        # Istio lets a lone destination omit its weight: it then takes all the traffic.
        implied = 100 if len(destinations) == 1 else 0
        baseline = sum(int(d.get("weight", implied)) for d in destinations if self._is_baseline(d))
        candidate = sum(int(d.get("weight", implied)) for d in destinations if self._is_candidate(d))
        if baseline + candidate == 0:
            return protocol.Weights(0.0, 0.0)
        return protocol.Weights.of_candidate(100.0 * candidate / (baseline + candidate))

    def _update(self, candidate: int | None) -> dict[str, Any]:
        path = virtual_service_path(self._ns, self._vs)
        return protocol.replace_object(self._api, path, self._what, lambda vs: self._set(vs, candidate))

    def ensure(self) -> None:
        path = virtual_service_path(self._ns, self._vs)

        def add_candidate(vs: dict[str, Any]) -> None:  # at weight 0, only where it is missing
            missing = [r for _, r in self._split_routes(vs) if not any(map(self._is_candidate, r["route"]))]
            if not missing:
                return
            self._team_weights(vs)  # recorded before the first change
            for route in missing:
                base = next(d for d in route["route"] if self._is_baseline(d))
                # Its implied weight (100 alone, else 0) written out: Istio wants them all once there are two.
                base["weight"] = self._share({}, base, alone=len(route["route"]) == 1)
                route["route"].append(self._candidate_beside(base))

        protocol.replace_object(self._api, path, self._what, add_candidate)

    def get_weights(self) -> protocol.Weights:
        return self._weights(
            protocol.read_object(self._api, virtual_service_path(self._ns, self._vs), self._what)
        )

    def set_weights(self, candidate_percent: int) -> protocol.Weights:
        return self._weights(self._update(max(0, min(100, int(candidate_percent)))))

    def finalize(self, ending: Ending) -> protocol.Weights:
        return self._weights(self._update(100 if ending is Ending.PROMOTED else None))


def from_spec(target: protocol.RouteTarget, config: Mapping[str, Any], api: rest.JsonApi) -> IstioRouter:
    vs = config.get("virtualService") or {}
    name = vs.get("name") if isinstance(vs, Mapping) else None
    if not isinstance(name, str) or not name:
        raise protocol.RoutingError(f"{FIELD}.name is required")
    routes = vs.get("routes") or []
    if not isinstance(routes, list) or not all(isinstance(r, str) and r for r in routes):
        raise protocol.RoutingError(f"{FIELD}.routes must be a list of http route names")
    return IstioRouter(api, target, protocol.checked_name(name, f"{FIELD}.name"), routes)
