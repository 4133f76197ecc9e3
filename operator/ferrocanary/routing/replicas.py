"""Replica-ratio routing: both builds behind one Service, traffic follows the pod count.

With ``total`` pods in all, weight w puts round(total * w / 100) pods on the candidate and the rest on
the baseline. While a canary is in flight each arm keeps at least one pod (0% and 100% are exact), so
the effective weight is quantised: ``set_weights`` returns the split the pods really give, and the
operator labels its analysis blocks with that. The arm that grows is scaled first, so capacity never
dips below ``total`` during a step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ferrocanary.kube import resources, rest
from ferrocanary.model.decisions import Ending
from ferrocanary.routing import protocol

PROVIDER = "replicas"


def split(total: int, candidate_percent: float) -> tuple[int, int]:
    """(baseline, candidate) pod counts for a weight; both arms keep a pod unless the weight is 0 or 100."""
    if candidate_percent <= 0:
        return total, 0
    if candidate_percent >= 100:
        return 0, total
    candidate = math.floor(total * candidate_percent / 100.0 + 0.5)
    candidate = min(max(candidate, 1), total - 1)
    return total - candidate, candidate


class ReplicaRouter:
    """A ``TrafficRouter`` that scales the two Deployments; the total is kept."""

    def __init__(self, api: rest.JsonApi, target: protocol.RouteTarget, total: int) -> None:
        if total < 2:
            raise protocol.RoutingError(f"spec.trafficRouting.replicas.total must be >= 2, got {total}")
        self._api = api
        self._target = target
        self._total = total

    @property
    def provider(self) -> str:
        return PROVIDER

    def _field(self, deployment: str) -> str:
        arm = "baseline" if deployment == self._target.baseline_deployment else "candidate"
        return f"spec.{arm}.deployment"

    def _read(self, deployment: str) -> int:
        try:
            return resources.get_replicas(self._api, self._target.namespace, deployment)
        except rest.NotFoundError:
            raise protocol.RoutingError(
                f"Deployment {self._target.namespace}/{deployment} ({self._field(deployment)}) not found"
            ) from None
        except rest.KubeError as exc:
            raise protocol.RoutingError(str(exc)) from None

    def _current(self, deployment: str) -> int:
        """Its replicas now; a deleted Deployment runs none (an arm deleted mid-canary is not an error)."""
        try:
            return resources.get_replicas(self._api, self._target.namespace, deployment)
        except rest.NotFoundError:
            return 0
        except rest.KubeError as exc:
            raise protocol.RoutingError(str(exc)) from None

    def _write(self, deployment: str, replicas: int) -> None:
        try:
            resources.set_replicas(self._api, self._target.namespace, deployment, replicas)
        except rest.NotFoundError:
            if replicas == 0:
                return  # already none: a rollback after the candidate was deleted still completes
            raise protocol.RoutingError(
                f"scaling {deployment} ({self._field(deployment)}) to {replicas}: "
                f"Deployment {self._target.namespace}/{deployment} not found"
            ) from None
        except rest.KubeError as exc:
            raise protocol.RoutingError(
                f"scaling {deployment} ({self._field(deployment)}) to {replicas}: {exc}"
            ) from None

    def ensure(self) -> None:
        self._read(self._target.baseline_deployment)
        self._read(self._target.candidate_deployment)

    def get_weights(self) -> protocol.Weights:
        baseline = self._read(self._target.baseline_deployment)
        candidate = self._read(self._target.candidate_deployment)
        if baseline + candidate == 0:
            return protocol.Weights(0.0, 0.0)
        return protocol.Weights.of_candidate(100.0 * candidate / (baseline + candidate))

    def set_weights(self, candidate_percent: int) -> protocol.Weights:
        baseline, candidate = split(self._total, candidate_percent)
        current_candidate = self._current(self._target.candidate_deployment)
        grow = (self._target.candidate_deployment, candidate)
        shrink = (self._target.baseline_deployment, baseline)
        order = [grow, shrink] if candidate >= current_candidate else [shrink, grow]
        for deployment, replicas in order:
            self._write(deployment, replicas)
        return protocol.Weights.of_candidate(100.0 * candidate / self._total)

    def finalize(self, ending: Ending) -> protocol.Weights:
        return self.set_weights(100 if ending is Ending.PROMOTED else 0)


def from_spec(target: protocol.RouteTarget, config: Mapping[str, Any], api: rest.JsonApi) -> ReplicaRouter:
    return ReplicaRouter(api, target, int(config.get("total", 0)))
