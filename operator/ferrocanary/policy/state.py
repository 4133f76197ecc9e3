"""The canary's state as the policy sees it, and its round trip through the RustCanary's status.

Everything the state machine needs to resume lives here and is written to ``.status`` after every
tick: phase, step, the weights in effect since when (the history labels the judge's blocks), start
and decision times, the verdict. Nothing is kept in memory between ticks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ferrocanary.model.spec import Plan

__all__ = ["SETTLED", "TERMINAL", "CanaryState", "ManualAction", "Phase", "Plan", "StepRecord", "Verdict"]


class Phase(StrEnum):
    """Where a canary is. The last four are terminal: the operator stops touching traffic."""

    PENDING = "Pending"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    WAITING_PROMOTION = "WaitingPromotion"
    PROMOTING = "Promoting"
    ROLLING_BACK = "RollingBack"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    INCONCLUSIVE = "Inconclusive"
    INVALID = "Invalid"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def analysing(self) -> bool:
        """Phases in which the judge keeps looking at the data."""
        return self in (Phase.PROGRESSING, Phase.PAUSED, Phase.WAITING_PROMOTION)


TERMINAL: frozenset[Phase] = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK, Phase.INCONCLUSIVE, Phase.INVALID})


class Verdict(StrEnum):
    """How the canary ended (or is ending)."""

    PROMOTE = "Promote"
    ROLLBACK = "Rollback"
    INCONCLUSIVE = "Inconclusive"
    INVALID = "Invalid"


#: The phase a RollingBack canary settles in, by verdict.
SETTLED: Mapping[Verdict, Phase] = {
    Verdict.ROLLBACK: Phase.ROLLED_BACK,
    Verdict.INCONCLUSIVE: Phase.INCONCLUSIVE,
    Verdict.INVALID: Phase.INVALID,
    Verdict.PROMOTE: Phase.PROMOTED,
}


class ManualAction(StrEnum):
    """Values of the ``ferrocanary.io/action`` annotation."""

    PROMOTE = "promote"
    ABORT = "abort"
    PAUSE = "pause"
    RESUME = "resume"


@dataclass(frozen=True)
class StepRecord:
    """Step ``index`` started at ``started_at`` with ``weight`` percent on the candidate."""

    index: int
    weight: float
    started_at: datetime


@dataclass(frozen=True)
class CanaryState:
    """The policy's part of ``.status``."""

    phase: Phase = Phase.PENDING
    step_index: int = -1
    weight: float = 0.0  # what the router reports, percent on the candidate
    started_at: datetime | None = None
    step_started_at: datetime | None = None
    decided_at: datetime | None = None
    verdict: Verdict | None = None
    verdict_reason: str = ""
    steps: tuple[StepRecord, ...] = field(default=())


def format_time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _steps(raw: Any) -> tuple[StepRecord, ...]:
    if not isinstance(raw, Sequence):
        return ()
    records = []
    for item in raw:
        started = parse_time(item.get("startedAt")) if isinstance(item, Mapping) else None
        if started is not None:
            records.append(StepRecord(int(item.get("index", 0)), float(item.get("weight", 0.0)), started))
    return tuple(records)


def from_status(status: Mapping[str, Any] | None) -> CanaryState:
    """The state stored in ``.status`` (an empty or foreign status reads as a fresh Pending canary)."""
    status = status or {}
    try:
        phase = Phase(status.get("phase", Phase.PENDING.value))
    except ValueError:
        phase = Phase.PENDING
    verdict_raw = status.get("verdict")
    verdict = Verdict(verdict_raw) if verdict_raw in {v.value for v in Verdict} else None
    return CanaryState(
        phase=phase,
        step_index=int(status.get("stepIndex", -1)),
        weight=float(status.get("weight", 0) or 0),
        started_at=parse_time(status.get("startedAt")),
        step_started_at=parse_time(status.get("stepStartedAt")),
        decided_at=parse_time(status.get("decidedAt")),
        verdict=verdict,
        verdict_reason=str(status.get("verdictReason") or ""),
        steps=_steps(status.get("steps")),
    )


def to_status(state: CanaryState) -> dict[str, Any]:
    """The status fields the policy owns (None clears a field in a merge patch)."""
    return {
        "phase": state.phase.value,
        "stepIndex": state.step_index,
        "weight": round(state.weight),
        "startedAt": format_time(state.started_at),
        "stepStartedAt": format_time(state.step_started_at),
        "decidedAt": format_time(state.decided_at),
        "verdict": state.verdict.value if state.verdict else None,
        "verdictReason": state.verdict_reason or None,
        "steps": [
            {"index": s.index, "weight": s.weight, "startedAt": format_time(s.started_at)}
            for s in state.steps
        ],
    }
