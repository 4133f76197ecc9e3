"""The seam between the canary and whatever splits its traffic: the ``TrafficRouter`` Protocol.

Four verbs fit every provider we know: ``ensure`` (check or prepare the routing objects, e.g. add the
candidate as a second backend at weight 0), ``get_weights`` (what the data plane is told now),
``set_weights`` (move it), ``finalize`` (the end state after a verdict). Gateway API HTTPRoute
backendRefs, an Istio VirtualService's route destinations, an SMI TrafficSplit's backends and an NGINX
canary Ingress's ``canary-weight`` annotation are all "two weighted backends on one object", so each
is one module implementing these verbs. Weights are percents of traffic, as the router reports them:
a replica ratio cannot hit every percent, so callers record what ``set_weights`` returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class RoutingError(Exception):
    """The router cannot do its job (object missing, malformed, API refused); the message says which."""


class Outcome(StrEnum):
    """The end state ``finalize`` leaves the traffic in."""

    PROMOTED = "promoted"  # all traffic on the candidate
    ROLLED_BACK = "rolledBack"  # all traffic on the baseline


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

    def finalize(self, outcome: Outcome) -> Weights:
        """Leave the traffic in its end state (all candidate, or all baseline and the candidate detached)."""
        ...
