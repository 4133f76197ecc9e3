"""The canary state machine: (state, plan, event, now) -> transition. Pure: no I/O, no clock.

Events are the start of a canary, a judge decision, "no data" (Prometheus down), a manual action and
the confirmation that traffic reached its end state. A ``Transition`` carries the next state, what
must happen to traffic (a step weight, or an ending) and the Kubernetes Events to post. Safety rules:
a rollback decision (fault, guard rail, target missed) acts in every phase that still routes traffic,
including Paused and WaitingPromotion; no data never promotes; running out of time ends Inconclusive
with traffic back on the baseline.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from ferrocanary.model.decisions import Decision, Ending
from ferrocanary.model.reasons import Reason
from ferrocanary.policy.state import (
    SETTLED,
    CanaryState,
    ManualAction,
    Phase,
    Plan,
    StepRecord,
    Verdict,
)

NORMAL = "Normal"
WARNING = "Warning"

_VERDICT_OF: dict[Decision, Verdict] = {
    Decision.ROLLBACK: Verdict.ROLLBACK,
    Decision.INVALID: Verdict.INVALID,
    Decision.INCONCLUSIVE: Verdict.INCONCLUSIVE,
}
_SAFETY: frozenset[Decision] = frozenset({Decision.ROLLBACK, Decision.INVALID})
_ROUTING: frozenset[Phase] = frozenset(
    {Phase.PENDING, Phase.PROGRESSING, Phase.PAUSED, Phase.WAITING_PROMOTION, Phase.PROMOTING}
)


@dataclass(frozen=True)
class Note:
    """A Kubernetes Event to post about the canary."""

    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class Transition:
    """The next state, what to do to traffic, and what to tell people."""

    state: CanaryState
    target_weight: int | None = None  # route this percent to the candidate
    ending: Ending | None = None  # or put traffic in its end state
    notes: tuple[Note, ...] = ()

    @property
    def changed(self) -> bool:
        return self.target_weight is not None or self.ending is not None or bool(self.notes)


def _stay(state: CanaryState) -> Transition:
    return Transition(state)


def _elapsed(state: CanaryState, now: datetime) -> float:
    return 0.0 if state.started_at is None else (now - state.started_at).total_seconds()


def _dwell(state: CanaryState, now: datetime) -> float:
    return 0.0 if state.step_started_at is None else (now - state.step_started_at).total_seconds()


def _step_text(plan: Plan, index: int) -> str:
    return f"step {index + 1}/{len(plan.weights)} ({plan.weights[index]}% to the candidate)"


def begin(state: CanaryState, plan: Plan, now: datetime) -> Transition:
    """Pending -> Progressing at the first step."""
    if state.phase is not Phase.PENDING:
        return _stay(state)
    weight = plan.weights[0]
    nxt = dataclasses.replace(
        state,
        phase=Phase.PROGRESSING,
        step_index=0,
        weight=float(weight),
        started_at=now,
        step_started_at=now,
        steps=(StepRecord(0, float(weight), now),),
    )
    return Transition(
        nxt,
        target_weight=weight,
        notes=(Note(NORMAL, Reason.STARTED, f"analysis started at {_step_text(plan, 0)}"),),
    )


def _advance(state: CanaryState, plan: Plan, now: datetime, why: str) -> Transition:
    index = state.step_index + 1
    weight = plan.weights[index]
    nxt = dataclasses.replace(
        state,
        step_index=index,
        weight=float(weight),
        step_started_at=now,
        steps=(*state.steps, StepRecord(index, float(weight), now)),
    )
    message = (
        f"advanced to {_step_text(plan, index)} after {_dwell(state, now):.0f}s at {state.weight:g}%: {why}"
    )
    return Transition(nxt, target_weight=weight, notes=(Note(NORMAL, Reason.STEP_ADVANCED, message),))


def _end(state: CanaryState, verdict: Verdict, reason: str, now: datetime) -> Transition:
    """Start leaving: Promoting for a promotion, RollingBack for everything else."""
    promoting = verdict is Verdict.PROMOTE
    nxt = dataclasses.replace(
        state,
        phase=Phase.PROMOTING if promoting else Phase.ROLLING_BACK,
        verdict=verdict,
        verdict_reason=reason,
        decided_at=now,
    )
    note = Note(NORMAL if promoting else WARNING, nxt.phase.value, f"{verdict.value}: {reason}")
    return Transition(nxt, ending=Ending.PROMOTED if promoting else Ending.ROLLED_BACK, notes=(note,))


def _timed_out(state: CanaryState, plan: Plan, now: datetime) -> bool:
    return state.phase is Phase.PROGRESSING and _elapsed(state, now) >= plan.max_duration_seconds


def _timeout(state: CanaryState, plan: Plan, now: datetime, last: str) -> Transition:
    reason = f"no verdict within maxDuration ({plan.max_duration_seconds:g}s); last: {last}"
    return _end(state, Verdict.INCONCLUSIVE, reason, now)


def judge(
    state: CanaryState,
    plan: Plan,
    decision: Decision,
    reason: str,
    now: datetime,
    *,
    step_judged: bool = True,
) -> Transition:
    """Act on one judge decision.

    ``step_judged`` says whether a complete block past the warm-up at the current step's weight has
    been judged; until then Continue does not step up (the next weight would go out on no evidence
    from this one), though a verdict, the time limit and safety still act.
    """
    if decision is Decision.CONTINUE and not step_judged:
        decision = Decision.HOLD
    if state.phase not in (Phase.PROGRESSING, Phase.PAUSED, Phase.WAITING_PROMOTION):
        return _stay(state)
    if decision in _SAFETY:
        return _end(state, _VERDICT_OF[decision], reason, now)
    if state.phase is not Phase.PROGRESSING:
        return _stay(state)  # paused, or waiting for a person: only safety acts
    if decision is Decision.INCONCLUSIVE:
        return _end(state, Verdict.INCONCLUSIVE, reason, now)
    last_step = state.step_index >= len(plan.weights) - 1
    if decision is Decision.PROMOTE and (last_step or not plan.require_final_step):
        return _promote(state, plan, reason, now)
    return _progress(state, plan, decision, reason, now)


def _promote(state: CanaryState, plan: Plan, reason: str, now: datetime) -> Transition:
    """The judge says promote: do it, or wait for a person when promotion is manual."""
    if not plan.manual_promotion:
        return _end(state, Verdict.PROMOTE, reason, now)
    nxt = dataclasses.replace(state, phase=Phase.WAITING_PROMOTION, decided_at=now)
    note = Note(
        NORMAL,
        Reason.WAITING_PROMOTION,
        f"ready to promote ({reason}); waiting for ferrocanary.io/action=promote",
    )
    return Transition(nxt, notes=(note,))


def _progress(state: CanaryState, plan: Plan, decision: Decision, reason: str, now: datetime) -> Transition:
    """No verdict yet: time out, stay, or step up once the step has dwelt long enough."""
    if _timed_out(state, plan, now):
        return _timeout(state, plan, now, reason)
    last_step = state.step_index >= len(plan.weights) - 1
    if decision is not Decision.HOLD and not last_step and _dwell(state, now) >= plan.min_dwell_seconds:
        return _advance(state, plan, now, reason)
    return _stay(state)


def no_data(state: CanaryState, plan: Plan, reason: str, now: datetime) -> Transition:
    """The metrics source could not answer: hold (never promote), but still honour maxDuration."""
    if _timed_out(state, plan, now):
        return _timeout(state, plan, now, reason)
    return _stay(state)


def candidate_failed(state: CanaryState, reason: str, now: datetime) -> Transition:
    """The candidate crashed, cannot pull its image, or never got ready: roll back at once, from any
    phase that has not ended yet (a Pending canary too: ensure() may have touched the route)."""
    if state.phase.terminal or state.phase in (Phase.PROMOTING, Phase.ROLLING_BACK):
        return _stay(state)
    return _end(state, Verdict.ROLLBACK, reason, now)


def ending_of(state: CanaryState) -> Ending | None:
    """The end state traffic still has to reach: set by ``_end``'s Transition, and still owed by a
    canary left in Promoting or RollingBack (its router failed, or the operator died before it)."""
    if state.phase is Phase.PROMOTING:
        return Ending.PROMOTED
    if state.phase is Phase.ROLLING_BACK:
        return Ending.ROLLED_BACK
    return None


def settle(state: CanaryState, now: datetime) -> Transition:
    """Traffic reached its end state: Promoting -> Promoted, RollingBack -> the verdict's phase."""
    if state.phase not in (Phase.PROMOTING, Phase.ROLLING_BACK):
        return _stay(state)
    verdict = state.verdict or (Verdict.PROMOTE if state.phase is Phase.PROMOTING else Verdict.ROLLBACK)
    final = SETTLED[verdict]
    nxt = dataclasses.replace(state, phase=final, decided_at=state.decided_at or now)
    note = Note(
        NORMAL if final is Phase.PROMOTED else WARNING, final.value, state.verdict_reason or final.value
    )
    return Transition(nxt, notes=(note,))


def reject(state: CanaryState, reason: str, now: datetime) -> Transition:
    """The spec cannot be acted on. Before any traffic moved: Invalid at once; later: roll back first."""
    if state.phase.terminal or state.phase is Phase.ROLLING_BACK:
        return _stay(state)
    if state.phase is Phase.PENDING:
        nxt = dataclasses.replace(
            state, phase=Phase.INVALID, verdict=Verdict.INVALID, verdict_reason=reason, decided_at=now
        )
        return Transition(nxt, notes=(Note(WARNING, Reason.INVALID, reason),))
    return _end(state, Verdict.INVALID, reason, now)


def act(state: CanaryState, plan: Plan, action: ManualAction, now: datetime, context: str = "") -> Transition:
    """A person's ``ferrocanary.io/action``; an action that does not apply is reported and dropped."""
    by_hand = f"by hand (ferrocanary.io/action={action.value})"
    if action is ManualAction.PROMOTE and state.phase in _ROUTING - {Phase.PROMOTING}:
        reason = f"promoted {by_hand}" + (f"; the judge said: {context}" if context else "")
        return _end(state, Verdict.PROMOTE, reason, now)
    if action is ManualAction.ABORT and state.phase in _ROUTING:
        reason = f"aborted {by_hand}" + (f"; the judge said: {context}" if context else "")
        return _end(state, Verdict.ROLLBACK, reason, now)
    if action is ManualAction.PAUSE and state.phase in (
        Phase.PENDING,
        Phase.PROGRESSING,
        Phase.WAITING_PROMOTION,
    ):
        nxt = dataclasses.replace(state, phase=Phase.PAUSED)
        return Transition(nxt, notes=(Note(NORMAL, Reason.PAUSED, f"paused {by_hand} at {state.weight:g}%"),))
    if action is ManualAction.RESUME and state.phase is Phase.PAUSED:
        phase = Phase.PROGRESSING if state.step_index >= 0 else Phase.PENDING
        nxt = dataclasses.replace(state, phase=phase)
        return Transition(
            nxt, notes=(Note(NORMAL, Reason.RESUMED, f"resumed {by_hand} at {state.weight:g}%"),)
        )
    note = Note(
        WARNING, Reason.ACTION_IGNORED, f"action {action.value} does not apply in phase {state.phase.value}"
    )
    return Transition(state, notes=(note,))


def record_weight(state: CanaryState, effective: float) -> CanaryState:
    """The router's actual split replaces the planned one (replica ratios cannot hit every percent)."""
    steps = state.steps
    if steps and steps[-1].index == state.step_index:
        steps = (*steps[:-1], dataclasses.replace(steps[-1], weight=float(effective)))
    return dataclasses.replace(state, weight=float(effective), steps=steps)


#: Restores of the route within one step before the canary stops fighting whoever keeps moving it.
MAX_RESTORES_PER_STEP = 3


def restores_in_step(state: CanaryState) -> int:
    """How often traffic found off the current step was put back (each restore adds two records)."""
    records = sum(1 for s in state.steps if s.index == state.step_index)
    return max(0, records - 1) // 2


def contested(state: CanaryState) -> bool:
    """Someone else keeps moving the route: restoring it again would be a tug of war, and every
    restore also costs the judge the blocks around it. The step history stays bounded too."""
    return restores_in_step(state) >= MAX_RESTORES_PER_STEP


def disturbed(state: CanaryState, actual: float, since: datetime, now: datetime) -> CanaryState:
    """Record traffic found off its step (``actual`` percent) and put back at ``now``.

    The route moved some time after ``since`` (the last status write that saw it where status says)
    without status knowing: an operator killed between routing and writing status, or someone's
    edit. The step history gains the stray weight from ``since`` and the step's own weight again
    from ``now``, so the blocks in between are labelled as changed, fall in the judge's warm-up and
    never reach the sample-ratio check or a KPI under the wrong weight. The step itself (its index
    and dwell) is unchanged.
    """
    if state.step_index < 0 or not state.steps:
        return state
    since = max(since, state.steps[-1].started_at)
    steps = (
        *state.steps,
        StepRecord(state.step_index, float(actual), since),
        StepRecord(state.step_index, state.weight, now),
    )
    return dataclasses.replace(state, steps=steps)
