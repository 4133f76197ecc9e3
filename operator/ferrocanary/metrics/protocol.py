"""The seam between the operator and its evidence: a ``MetricsSource`` turns a time window into blocks.

A ``Window`` is everything a source needs to know: the analysis start, the newest moment with
complete data, the block length, the per-arm PromQL selectors and the traffic steps taken so far
(each block is labelled with the candidate weight in effect at its start). Blocks are aligned to the
window start, so re-fetching the same window after an operator restart yields the same blocks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from ferrocanary.metrics import presets, queries
from ferrocanary.model import recording
from ferrocanary.model import spec as canary_spec


class MetricsUnavailableError(Exception):
    """The source cannot answer at all (Prometheus down, refused, timed out); the message says why."""


class MetricsNotAllowedError(MetricsUnavailableError):
    """The platform does not allow this source as the spec names it (an address that may not receive
    the token, TLS verification switched off); the message says what to change."""


@dataclass(frozen=True)
class ArmSelectors:
    """PromQL label matchers (no braces) for each arm's workload series and kube-state-metrics series."""

    baseline: str
    candidate: str
    baseline_pods: str
    candidate_pods: str

    @classmethod
    def of(cls, namespace: str, spec: canary_spec.CanarySpec) -> ArmSelectors:
        """The spec's ``analysis.selectors``, each missing one from ``queries.default_selectors``.

        A selector the spec gives is always narrowed to the canary's own namespace: a tenant's
        RustCanary reads its own namespace's series with the platform's token, never another's
        (``namespace="shop",namespace="other"`` matches nothing).
        """
        defaults = queries.default_selectors(namespace, spec.baseline.deployment, spec.candidate.deployment)
        own = f'namespace="{namespace}"'
        merged = {
            key: f"{own},{spec.selectors[key]}" if spec.selectors.get(key) else value
            for key, value in defaults.items()
        }
        return cls(merged["baseline"], merged["candidate"], merged["baselinePods"], merged["candidatePods"])

    def of_arm(self, arm: str) -> tuple[str, str]:
        """``arm``'s workload selector and kube-state-metrics (pod) selector."""
        if arm == "baseline":
            return self.baseline, self.baseline_pods
        return self.candidate, self.candidate_pods


@dataclass(frozen=True)
class StepChange:
    """From ``at`` on, the candidate receives ``weight`` percent of the traffic."""

    at: datetime
    weight: float


@dataclass(frozen=True)
class Window:
    """The blocks wanted: [start, end) cut into ``interval_seconds`` blocks aligned to ``start``."""

    start: datetime
    end: datetime
    interval_seconds: float
    selectors: ArmSelectors
    steps: tuple[StepChange, ...] = ()
    # arm -> its resolved queries (spec.analysis.metrics); an arm not here reads the metrics contract
    resolved: Mapping[str, queries.ArmQueries] = field(default_factory=dict)
    custom: Mapping[str, queries.CustomKpiQueries] = field(default_factory=dict)  # KPI name -> its queries
    # How long after a block's end Prometheus holds it whole (spec.analysis.prometheus.lag): when a look
    # became due, which orders looks waiting for a fetch slot.
    lag_seconds: float = 0.0

    def arm_queries(self, arm: str) -> queries.ArmQueries:
        """What the source runs for ``arm``: the resolved preset/templates, else the contract's."""
        found = self.resolved.get(arm)
        if found is not None:
            return found
        return queries.contract_queries(*self.selectors.of_arm(arm), queries.range_of(self.interval_seconds))

    def block_starts(self) -> tuple[datetime, ...]:
        """Starts of the complete blocks (those ending at or before ``end``)."""
        span = (self.end - self.start).total_seconds()
        if span < self.interval_seconds:
            return ()
        count = math.floor(span / self.interval_seconds + 1e-9)
        step = timedelta(seconds=self.interval_seconds)
        return tuple(self.start + k * step for k in range(count))

    def block_weight(self, start: datetime) -> float:
        """The weight a block is labelled with: the one in effect at its end.

        A block during which the weight changed then counts as after the change, so the judge's
        warm-up drops it; labelled with the old weight it would carry the new split's traffic as if
        it were the old one's and trip the sample-ratio check.
        """
        return self.weight_at(start + timedelta(seconds=self.interval_seconds) - timedelta(microseconds=1))

    def weight_at(self, moment: datetime) -> float:
        """The candidate weight in effect at ``moment`` (the first step's before any step started)."""
        weight = self.steps[0].weight if self.steps else 0.0
        for change in self.steps:
            if change.at <= moment:
                weight = change.weight
        return weight


def canary_window(
    namespace: str,
    spec: canary_spec.CanarySpec,
    started_at: datetime,
    end: datetime,
    steps: tuple[StepChange, ...],
) -> Window:
    """The window of a canary's analysis: from its start to ``end``, labelled by its step history."""
    selectors = ArmSelectors.of(namespace, spec)
    return Window(
        start=started_at,
        end=end,
        interval_seconds=spec.settings.interval_seconds,
        selectors=selectors,
        steps=steps,
        resolved=resolved_queries(namespace, spec, selectors),
        custom=custom_queries(namespace, spec, selectors),
        lag_seconds=spec.prometheus.lag_seconds,
    )


def custom_queries(
    namespace: str, spec: canary_spec.CanarySpec, selectors: ArmSelectors | None = None
) -> dict[str, queries.CustomKpiQueries]:
    """The queries of ``spec.analysis.metrics.kpis``, per KPI and arm."""
    selectors = selectors or ArmSelectors.of(namespace, spec)
    rng = queries.range_of(spec.settings.interval_seconds)
    return presets.custom_queries(namespace, spec, {arm: selectors.of_arm(arm) for arm in queries.ARMS}, rng)


def resolved_queries(
    namespace: str, spec: canary_spec.CanarySpec, selectors: ArmSelectors | None = None
) -> dict[str, queries.ArmQueries]:
    """Every arm's queries for a canary, as the operator runs them (``ferrocanary queries`` prints them)."""
    selectors = selectors or ArmSelectors.of(namespace, spec)
    rng = queries.range_of(spec.settings.interval_seconds)
    return {
        arm: presets.arm_queries(arm, namespace, spec, selectors.of_arm(arm), rng) for arm in queries.ARMS
    }


class MetricsSource(Protocol):
    """Produces the judge's blocks for a window; raises MetricsUnavailableError when it cannot."""

    def fetch(self, window: Window) -> recording.Recording: ...
