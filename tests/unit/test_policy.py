"""The canary state machine, decision by decision: what a person sees the canary do next."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ferrocanary.model import spec
from ferrocanary.model.decisions import Decision, Ending
from ferrocanary.policy import machine, state
from ferrocanary.policy.state import CanaryState, ManualAction, Phase, Plan, Verdict

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
PLAN = Plan(weights=(5, 10, 25, 50), min_dwell_seconds=300, max_duration_seconds=3600)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def started(plan: Plan = PLAN) -> CanaryState:
    return machine.begin(CanaryState(), plan, T0).state


def test_begin_moves_pending_to_the_first_step_and_asks_for_its_weight() -> None:
    t = machine.begin(CanaryState(), PLAN, T0)
    assert t.state.phase is Phase.PROGRESSING
    assert (t.state.step_index, t.target_weight, t.state.started_at) == (0, 5, T0)
    assert [n.reason for n in t.notes] == ["Started"]
    assert machine.begin(t.state, PLAN, at(1)).changed is False  # only a Pending canary starts


def test_continue_advances_only_after_the_minimum_dwell() -> None:
    s = started()
    assert machine.judge(s, PLAN, Decision.CONTINUE, "open", at(299)).target_weight is None
    t = machine.judge(s, PLAN, Decision.CONTINUE, "open", at(300))
    assert (t.state.step_index, t.target_weight, t.state.step_started_at) == (1, 10, at(300))
    assert [r.weight for r in t.state.steps] == [5.0, 10.0]
    assert t.notes[0].reason == "StepAdvanced"


def test_continue_does_not_step_up_before_a_block_at_this_weight_was_judged() -> None:
    s = started()
    waiting = machine.judge(s, PLAN, Decision.CONTINUE, "open", at(600), step_judged=False)
    assert waiting.target_weight is None
    assert waiting.state == s
    # the time limit and a verdict still act without such a block
    late = machine.judge(s, PLAN, Decision.CONTINUE, "open", at(3600), step_judged=False)
    assert late.state.phase is Phase.ROLLING_BACK
    assert late.state.verdict is Verdict.INCONCLUSIVE
    win = machine.judge(s, PLAN, Decision.PROMOTE, "clear win", at(600), step_judged=False)
    assert win.ending is Ending.PROMOTED


def test_the_last_step_is_held_until_a_verdict() -> None:
    s = started()
    for i in range(1, 4):
        s = machine.judge(s, PLAN, Decision.CONTINUE, "open", at(300 * i)).state
    assert s.step_index == 3
    t = machine.judge(s, PLAN, Decision.CONTINUE, "open", at(1500))
    assert t.target_weight is None
    assert t.state.step_index == 3


def test_hold_never_advances_and_never_promotes() -> None:
    s = started()
    t = machine.judge(s, PLAN, Decision.HOLD, "latency missing 3 blocks in a row", at(1000))
    assert t.state == s
    assert not t.changed
    t = machine.no_data(s, PLAN, "Prometheus unreachable", at(1000))
    assert t.state == s
    assert not t.changed


def test_promote_decision_promotes_at_any_step_in_auto_mode() -> None:
    t = machine.judge(started(), PLAN, Decision.PROMOTE, "p99 0.41 [0.38, 0.45] <= 0.60", at(600))
    assert t.state.phase is Phase.PROMOTING
    assert t.ending is Ending.PROMOTED
    assert t.state.verdict is Verdict.PROMOTE
    assert "p99" in t.state.verdict_reason
    settled = machine.settle(t.state, at(602))
    assert settled.state.phase is Phase.PROMOTED
    assert settled.state.phase.terminal
    assert settled.state.decided_at == at(600)


def test_require_final_step_walks_the_remaining_steps_first() -> None:
    plan = Plan(weights=(5, 50), min_dwell_seconds=60, max_duration_seconds=3600, require_final_step=True)
    s = started(plan)
    t = machine.judge(s, plan, Decision.PROMOTE, "all pass", at(60))
    assert t.target_weight == 50
    assert t.state.phase is Phase.PROGRESSING
    t = machine.judge(t.state, plan, Decision.PROMOTE, "all pass", at(120))
    assert t.state.phase is Phase.PROMOTING


def test_manual_mode_waits_for_a_person_and_only_safety_acts_meanwhile() -> None:
    plan = Plan(weights=(5, 10), min_dwell_seconds=60, max_duration_seconds=3600, manual_promotion=True)
    t = machine.judge(started(plan), plan, Decision.PROMOTE, "all pass", at(120))
    assert t.state.phase is Phase.WAITING_PROMOTION
    assert t.ending is None
    waiting = t.state
    assert machine.judge(waiting, plan, Decision.CONTINUE, "x", at(500)).state == waiting
    assert machine.judge(waiting, plan, Decision.INCONCLUSIVE, "x", at(500)).state == waiting
    promoted = machine.act(waiting, plan, ManualAction.PROMOTE, at(600), context="all pass")
    assert promoted.state.phase is Phase.PROMOTING
    assert "by hand" in promoted.state.verdict_reason
    fault = machine.judge(waiting, plan, Decision.ROLLBACK, "candidate memory fault", at(500))
    assert fault.state.phase is Phase.ROLLING_BACK
    assert fault.ending is Ending.ROLLED_BACK


@pytest.mark.parametrize(
    ("decision", "final"),
    [
        (Decision.ROLLBACK, Phase.ROLLED_BACK),
        (Decision.INVALID, Phase.INVALID),
        (Decision.INCONCLUSIVE, Phase.INCONCLUSIVE),
    ],
)
def test_terminal_decisions_roll_back_and_settle_in_their_phase(decision: Decision, final: Phase) -> None:
    t = machine.judge(started(), PLAN, decision, "why", at(30))
    assert t.state.phase is Phase.ROLLING_BACK
    assert t.ending is Ending.ROLLED_BACK
    assert t.notes[0].type == machine.WARNING
    assert machine.settle(t.state, at(32)).state.phase is final


def test_a_fault_rolls_back_even_while_paused() -> None:
    paused = machine.act(started(), PLAN, ManualAction.PAUSE, at(10)).state
    assert paused.phase is Phase.PAUSED
    assert machine.judge(paused, PLAN, Decision.CONTINUE, "open", at(900)).state == paused  # no advance
    assert machine.judge(paused, PLAN, Decision.PROMOTE, "pass", at(900)).state == paused  # no promotion
    assert machine.judge(paused, PLAN, Decision.ROLLBACK, "fault", at(900)).state.phase is Phase.ROLLING_BACK


def test_resume_returns_to_progressing_and_keeps_the_step() -> None:
    paused = machine.act(started(), PLAN, ManualAction.PAUSE, at(10)).state
    resumed = machine.act(paused, PLAN, ManualAction.RESUME, at(20))
    assert resumed.state.phase is Phase.PROGRESSING
    assert resumed.state.step_index == 0
    assert resumed.notes[0].reason == "Resumed"


def test_abort_rolls_back_from_any_phase_that_routes_traffic() -> None:
    for current in (CanaryState(), started(), machine.act(started(), PLAN, ManualAction.PAUSE, at(1)).state):
        t = machine.act(current, PLAN, ManualAction.ABORT, at(5))
        assert t.state.phase is Phase.ROLLING_BACK
        assert t.state.verdict is Verdict.ROLLBACK
        assert "aborted by hand" in t.state.verdict_reason


def test_actions_that_do_not_apply_are_reported_not_applied() -> None:
    done = machine.settle(machine.judge(started(), PLAN, Decision.ROLLBACK, "x", at(1)).state, at(2)).state
    t = machine.act(done, PLAN, ManualAction.PROMOTE, at(3))
    assert t.state == done
    assert t.notes[0].reason == "ActionIgnored"
    t = machine.act(started(), PLAN, ManualAction.RESUME, at(3))
    assert t.state.phase is Phase.PROGRESSING
    assert t.notes[0].reason == "ActionIgnored"


def test_running_out_of_time_ends_inconclusive_back_on_the_baseline() -> None:
    s = started()
    t = machine.judge(s, PLAN, Decision.CONTINUE, "p99 open", at(3600))
    assert t.state.phase is Phase.ROLLING_BACK
    assert t.state.verdict is Verdict.INCONCLUSIVE
    assert "maxDuration" in t.state.verdict_reason
    t = machine.no_data(s, PLAN, "Prometheus unreachable", at(3600))
    assert t.state.verdict is Verdict.INCONCLUSIVE
    assert t.ending is Ending.ROLLED_BACK


def test_a_bad_spec_before_any_traffic_moved_is_invalid_at_once() -> None:
    t = machine.reject(CanaryState(), "spec.steps.weights must be strictly increasing", T0)
    assert t.state.phase is Phase.INVALID
    assert t.ending is None
    t = machine.reject(started(), "spec.analysis.kpis[0].target: must be > 0", T0)
    assert t.state.phase is Phase.ROLLING_BACK
    assert t.state.verdict is Verdict.INVALID


def test_record_weight_keeps_the_routers_quantised_split_in_the_history() -> None:
    s = machine.record_weight(started(), 10.0)  # 1 pod of 10 for a 5% step
    assert s.weight == 10.0
    assert s.steps[-1].weight == 10.0


def test_a_disturbance_is_labelled_in_the_history_and_keeps_the_step_and_its_dwell() -> None:
    s = started()
    d = machine.disturbed(s, actual=25.0, since=at(60), now=at(90))
    assert [(r.index, r.weight, r.started_at) for r in d.steps] == [
        (0, 5.0, T0),
        (0, 25.0, at(60)),
        (0, 5.0, at(90)),
    ]
    assert (d.step_index, d.weight, d.step_started_at) == (s.step_index, s.weight, s.step_started_at)
    # A "since" older than the step itself is clamped: the step's own start is where it is known.
    assert machine.disturbed(s, 25.0, since=at(-60), now=at(5)).steps[1].started_at == T0
    assert machine.disturbed(CanaryState(), 25.0, at(0), at(5)) == CanaryState()  # not started


def test_status_round_trip_resumes_the_same_state() -> None:
    s = machine.judge(started(), PLAN, Decision.CONTINUE, "open", at(300)).state
    back = state.from_status(state.to_status(s))
    assert back == s
    assert state.from_status({}) == CanaryState()
    assert state.from_status({"phase": "SomethingElse"}).phase is Phase.PENDING


def test_plan_from_spec_reads_steps_and_promotion() -> None:
    plan = spec.parse_plan(
        {
            "steps": {"weights": [10, 50], "minDwell": "1m30s"},
            "analysis": {"maxDuration": "1h"},
            "promotion": {"mode": "manual", "requireFinalStep": True},
        }
    )
    assert plan == Plan((10, 50), 90.0, 3600.0, manual_promotion=True, require_final_step=True)
    assert spec.parse_plan({}).weights == (5, 10, 25, 50)
    with pytest.raises(ValueError, match=r"spec\.steps\.weights"):
        spec.parse_plan({"steps": {"weights": [10, 10]}})
    with pytest.raises(ValueError, match=r"spec\.steps\.minDwell"):
        spec.parse_plan({"steps": {"minDwell": "soon"}})
    with pytest.raises(ValueError, match=r"spec\.promotion\.mode"):
        spec.parse_plan({"promotion": {"mode": "yolo"}})
