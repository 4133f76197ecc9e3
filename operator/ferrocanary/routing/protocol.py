"""The seam between the canary and whatever splits its traffic: the ``TrafficRouter`` Protocol.

Four verbs fit every provider we know: ``ensure`` (check or prepare the routing objects, e.g. add the
candidate as a second backend at weight 0), ``get_weights`` (what the data plane is told now),
``set_weights`` (move it), ``finalize`` (the end state after a verdict). Gateway API HTTPRoute
backendRefs, an Istio VirtualService's route destinations, an SMI TrafficSplit's backends and an NGINX
canary Ingress's ``canary-weight`` annotation are all "two weighted backends on one object", so each
is one module implementing these verbs. Weights are percents of traffic, as the router reports them:
a replica ratio cannot hit every percent, so callers record what ``set_weights`` returns.

It also holds the one write discipline the object-editing routers share (``read_object``,
``replace_object``): read-modify-replace carrying the resourceVersion, retried on a conflict, with API
errors turned into ``RoutingError`` messages that name the object.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ferrocanary.kube import rest
from ferrocanary.model import spec as canary_spec
from ferrocanary.model.decisions import Ending

_ATTEMPTS = 3
# The weights the team wrote, per split rule/route (its index) and backend; null: no weight written.
TEAM_WEIGHTS = "ferrocanary.io/team-weights"
TeamWeights = dict[str, dict[str, int | None]]


class RoutingError(Exception):
    """The router cannot do its job (object missing, malformed, API refused); the message says which."""


class ObjectNotFoundError(RoutingError):
    """The routing object itself does not exist (so nothing of ours can be left on it)."""


def checked_name(value: str, field: str) -> str:
    """An object name from a router's block, refused (naming the field) unless a valid DNS-1123 name."""
    try:
        return canary_spec.object_name(value, field)
    except ValueError as exc:
        raise RoutingError(str(exc)) from None


@dataclass(frozen=True)
class Weights:
    """Percent of traffic on each arm (they add up to 100)."""

    baseline: float
    candidate: float

    @classmethod
    def of_candidate(cls, percent: float) -> Weights:
        return cls(baseline=100.0 - percent, candidate=float(percent))


@dataclass(frozen=True)
class RouteTarget:
    """The two builds and the Service they serve, as named in a RustCanary spec."""

    namespace: str
    canary: str
    baseline_deployment: str
    candidate_deployment: str
    baseline_service: str | None = None
    candidate_service: str | None = None
    service: str | None = None
    port: int | None = None


def two_services(target: RouteTarget, provider: str) -> tuple[str, str]:
    """(baseline, candidate) Service names, which every router that splits between Services needs."""
    if not target.baseline_service or not target.candidate_service:
        raise RoutingError(
            "spec.baseline.service and spec.candidate.service are required "
            f"with spec.trafficRouting.{provider}"
        )
    return target.baseline_service, target.candidate_service


class TrafficRouter(Protocol):
    """Moves traffic between the baseline and the candidate; every method is idempotent."""

    @property
    def provider(self) -> str:
        """The spec key of this provider (``gatewayAPI``, ``replicas``, ``none``, ...)."""
        ...

    def ensure(self) -> None:
        """Check (and where needed prepare) the routing objects; raise RoutingError naming what is wrong."""
        ...

    def get_weights(self) -> Weights:
        """The split the data plane is configured with now."""
        ...

    def set_weights(self, candidate_percent: int) -> Weights:
        """Send ``candidate_percent`` of traffic to the candidate; returns the split actually configured."""
        ...

    def finalize(self, ending: Ending) -> Weights:
        """Leave the traffic in its end state (all candidate, or all baseline and the candidate detached)."""
        ...


def read_object(api: rest.JsonApi, path: str, what: str) -> dict[str, Any]:
    """GET ``path``; ``what`` names the object (``HTTPRoute shop/scorer``) in the RoutingError."""
    try:
        return api.get(path)
    except rest.NotFoundError:
        raise ObjectNotFoundError(f"{what} not found") from None
    except rest.KubeError as exc:
        raise RoutingError(str(exc)) from None


def replace_object(
    api: rest.JsonApi, path: str, what: str, change: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Read, apply ``change`` to a copy, replace if it changed; retry when someone else wrote first.

    The PUT carries the resourceVersion we read, so a concurrent edit by someone else is never
    overwritten: the apiserver answers 409 and we start again from their version.
    """
    for attempt in range(_ATTEMPTS):
        current = read_object(api, path, what)
        wanted = copy.deepcopy(current)
        change(wanted)
        if wanted == current:
            return current
        try:
            return api.put(path, wanted)
        except rest.ConflictError:
            if attempt == _ATTEMPTS - 1:
                raise RoutingError(f"{what}: still conflicting after {_ATTEMPTS} attempts") from None
        except rest.KubeError as exc:
            raise RoutingError(f"{what}: {exc}") from None
    raise AssertionError("unreachable")


def team_weights(obj: dict[str, Any], canary: str, written_now: Callable[[], TeamWeights]) -> TeamWeights:
    """The weights the team wrote on a routing object, recorded in its ``TEAM_WEIGHTS`` annotation.

    The first call of a canary records ``written_now()`` (the object before any change of ours, in
    the same replace), later calls read the record back, so a rollback can put back exactly what the
    team wrote whatever the steps wrote meanwhile, after a restart of the operator too.
    """
    annotations = obj.setdefault("metadata", {}).setdefault("annotations", {}) or {}
    recorded = annotations.get(TEAM_WEIGHTS)
    if recorded:
        try:
            found = json.loads(recorded)
        except ValueError:
            found = None  # unreadable: someone edited it; record what the object holds now
        # Another canary's record (one promoted on this object before) is not the team's now.
        if isinstance(found, dict) and found.get("canary") == canary:
            rules: TeamWeights = found.get("rules") or {}
            return rules
    team = written_now()
    record = json.dumps({"canary": canary, "rules": team}, sort_keys=True)
    obj["metadata"]["annotations"] = {**annotations, TEAM_WEIGHTS: record}
    return team


def put_back_weight(backend: dict[str, Any], key: str, written: Mapping[str, int | None]) -> None:
    """The weight the team wrote for ``backend`` (recorded under ``key``), or none if it wrote none."""
    if key not in written:
        return  # added by someone during the canary: theirs, left as it is
    if written[key] is None:
        backend.pop("weight", None)
    else:
        backend["weight"] = written[key]


def forget_team_weights(obj: dict[str, Any]) -> None:
    """Drop the record once the team's weights are back (a rollback)."""
    annotations = obj.get("metadata", {}).get("annotations") or {}
    annotations.pop(TEAM_WEIGHTS, None)
