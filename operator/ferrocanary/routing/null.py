"""The null router: analysis only. Traffic is split by something ferrocanary does not drive.

It reports the fixed split the spec declares (``trafficRouting.none.candidateWeight``), so blocks are
labelled with the weight the candidate really receives, and it never writes anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ferrocanary.model.decisions import Ending
from ferrocanary.routing import protocol

PROVIDER = "none"


class NullRouter:
    """A ``TrafficRouter`` that observes and never routes."""

    def __init__(self, candidate_weight: float) -> None:
        if not 0 < candidate_weight < 100:
            raise protocol.RoutingError(
                f"spec.trafficRouting.none.candidateWeight must be within 1..99, got {candidate_weight}"
            )
        self._weights = protocol.Weights.of_candidate(candidate_weight)

    @property
    def provider(self) -> str:
        return PROVIDER

    def ensure(self) -> None:
        return None

    def get_weights(self) -> protocol.Weights:
        return self._weights

    def set_weights(self, candidate_percent: int) -> protocol.Weights:
        return self._weights

    def finalize(self, ending: Ending) -> protocol.Weights:
        return self._weights


def from_spec(target: protocol.RouteTarget, config: Mapping[str, Any], api: object) -> NullRouter:
    return NullRouter(float(config.get("candidateWeight", 50)))
