"""What the judge returns: the decision, each KPI's reading with its interval, and the cost projection.

Ratios (estimate, lower, upper, target) are on the candidate/baseline scale, e.g. a p99 estimate of
0.52 means the Rust build's p99 is 52% of the Python build's. ``Judgement.to_dict`` is the JSON
shape of ``ferrocanary analyze --json`` (snake_case keys) and of the status the operator publishes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ferrocanary.model.analysis import Direction


class Decision(StrEnum):
    """The combined decision after one look at the data."""

    PROMOTE = "Promote"
    ROLLBACK = "Rollback"
    CONTINUE = "Continue"
    HOLD = "Hold"
    INVALID = "Invalid"
    INCONCLUSIVE = "Inconclusive"

    @property
    def terminal(self) -> bool:
        """True when the analysis is over (the controller acts and stops looking)."""
        return self in TERMINAL


TERMINAL: frozenset[Decision] = frozenset(
    {Decision.PROMOTE, Decision.ROLLBACK, Decision.INVALID, Decision.INCONCLUSIVE}
)


class Ending(StrEnum):
    """Where traffic ends once a verdict is in: the policy decides it, a router carries it out."""

    PROMOTED = "promoted"  # all traffic on the candidate
    ROLLED_BACK = "rolledBack"  # all traffic on the baseline


class Reading(StrEnum):
    """One KPI's three-way reading against its target (plus: not enough data yet)."""

    PASS = "Pass"
    MISS = "Miss"
    OPEN = "Open"
    NO_DATA = "NoData"


def _json_float(value: float | None) -> float | None:
    # JSON has no NaN or Infinity; an unknown or unbounded value is reported as null.
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class KpiResult:
    """One KPI (or guard rail): estimate and anytime-valid interval, target, reading, time to decision."""

    name: str
    estimate: float | None
    lower: float | None
    upper: float | None
    target: float
    direction: Direction
    decision: Reading
    eta50_seconds: float | None
    eta80_seconds: float | None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "estimate": _json_float(self.estimate),
            "lower": _json_float(self.lower),
            "upper": _json_float(self.upper),
            "target": _json_float(self.target),
            "direction": self.direction.value,
            "decision": self.decision.value,
            "eta50_seconds": _json_float(self.eta50_seconds),
            "eta80_seconds": _json_float(self.eta80_seconds),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class CostProjection:
    """Monthly bill of each build if it served all the traffic, and the fraction saved by the candidate."""

    baseline_monthly: float
    candidate_monthly: float
    saving_fraction: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline_monthly": _json_float(self.baseline_monthly),
            "candidate_monthly": _json_float(self.candidate_monthly),
            "saving_fraction": _json_float(self.saving_fraction),
        }


@dataclass(frozen=True)
class Judgement:
    """The judge's answer to one look at all blocks so far."""

    decision: Decision
    reason: str  # a human sentence naming the KPI and its interval
    kpis: tuple[KpiResult, ...]
    guards: tuple[KpiResult, ...]
    blocks_used: int
    cost: CostProjection | None = None
    fault_rate_upper_bound: float | None = None  # candidate faults per pod-hour, zero-event bound

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision.value,
            "reason": self.reason,
            "blocks_used": self.blocks_used,
            "kpis": [k.to_dict() for k in self.kpis],
            "guards": [g.to_dict() for g in self.guards],
            "cost": self.cost.to_dict() if self.cost is not None else None,
            "fault_rate_upper_bound": _json_float(self.fault_rate_upper_bound),
        }
