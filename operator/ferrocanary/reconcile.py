"""One tick of one RustCanary: fetch -> judge -> policy -> route -> status. No kopf.

Called every few seconds per object (by the kopf timer in handlers, or by a test). A tick does at
most one thing, in this order: act on a manual ``ferrocanary.io/action``; start a Pending canary;
put traffic in its end state for Promoting/RollingBack; or, when an analysis interval has passed
since ``status.lastTickAt``, re-fetch every block since ``status.startedAt`` from Prometheus, ask the
judge, and let the policy advance, hold, promote or roll back. Then it writes the whole state to
``.status`` (guarded by the resourceVersion it read), posts an Event per transition, clears the
handled annotation and updates the operator's own metrics.

Because every fact lives in status and blocks are re-fetched each time, an operator killed at any
point resumes where it was: a traffic change not yet recorded in status is undone by the next
tick's convergence (status is the intent, and the stray interval is written into the step history so
the judge never reads it under the wrong weight), and a status write that lost a race is simply redone.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ferrocanary.kube import canaries, events, resources, rest
from ferrocanary.metrics import exposition, queries
from ferrocanary.metrics import prometheus as prometheus_source
from ferrocanary.metrics import protocol as metrics_protocol
from ferrocanary.model import analysis, decisions, recording
from ferrocanary.policy import machine, report
from ferrocanary.policy import spec as policy_spec
from ferrocanary.policy import state as policy_state
from ferrocanary.policy.state import Phase
from ferrocanary.routing import protocol as routing
from ferrocanary.routing import registry

log = logging.getLogger(__name__)

PHASES: tuple[str, ...] = tuple(p.value for p in Phase)
Evaluate = Callable[[recording.Recording, analysis.AnalysisSettings], decisions.Judgement]

# Condition types (Kubernetes API conventions: adjectives or past participles, True is "good").
PROGRESSING = "Progressing"
TRAFFIC_ROUTED = "TrafficRouted"
METRICS_AVAILABLE = "MetricsAvailable"


def _judge_evaluate(rec: recording.Recording, settings: analysis.AnalysisSettings) -> decisions.Judgement:
    from ferrocanary.judge import verdict  # noqa: PLC0415  (imported late: scipy is slow to load)

    return verdict.evaluate(rec, settings)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Deps:
    """Everything a tick talks to; tests swap the judge, the clock, or the API for the real ones."""

    api: rest.JsonApi
    evaluate: Evaluate = _judge_evaluate
    routers: Callable[[str, str, Mapping[str, Any]], routing.TrafficRouter] | None = None
    sources: Callable[[str, Mapping[str, Any]], metrics_protocol.MetricsSource] | None = None
    clock: Callable[[], datetime] = _now
    export: bool = True

    def router(self, namespace: str, name: str, spec: Mapping[str, Any]) -> routing.TrafficRouter:
        if self.routers is not None:
            return self.routers(namespace, name, spec)
        return registry.build(namespace, name, spec, self.api)

    def source(self, namespace: str, spec: Mapping[str, Any]) -> metrics_protocol.MetricsSource:
        if self.sources is not None:
            return self.sources(namespace, spec)
        return prometheus_source.from_spec(self.api, namespace, spec.get("analysis") or {})


@dataclass
class TickResult:
    """What a tick did (for logs and tests)."""

    action: str = "idle"  # idle | action | start | finalize | analysis | reject | conflict | gone
    wrote: bool = False
    status: dict[str, Any] = field(default_factory=dict)
    notes: tuple[machine.Note, ...] = ()


@dataclass
class _Tick:
    """The working set of one tick."""

    obj: Mapping[str, Any]
    deps: Deps
    started: float
    namespace: str
    name: str
    generation: int
    now: datetime
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    state: policy_state.CanaryState
    conditions: list[dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[machine.Note] = field(default_factory=list)

    def condition(self, type_: str, ok: bool, reason: str, message: str) -> None:
        before = report.condition_status(self.conditions, type_)
        self.conditions = report.set_condition(
            self.conditions,
            type_,
            ok,
            reason=reason,
            message=message,
            now=self.now,
            generation=self.generation,
        )
        if (before is not None and before != ok) or (before is None and not ok):
            kind = machine.NORMAL if ok else machine.WARNING
            self.notes.append(machine.Note(kind, reason, message))


def selectors(namespace: str, spec: Mapping[str, Any]) -> metrics_protocol.ArmSelectors:
    """Per-arm PromQL selectors: the spec's, else the defaults of queries.default_selectors."""
    defaults = queries.default_selectors(
        namespace,
        str((spec.get("baseline") or {}).get("deployment", "")),
        str((spec.get("candidate") or {}).get("deployment", "")),
    )
    given = (spec.get("analysis") or {}).get("selectors") or {}
    merged = {key: str(given.get(key) or value) for key, value in defaults.items()}
    return metrics_protocol.ArmSelectors(
        merged["baseline"], merged["candidate"], merged["baselinePods"], merged["candidatePods"]
    )


def _due(status: Mapping[str, Any], interval: float, now: datetime) -> bool:
    last = policy_state.parse_time(status.get("lastTickAt"))
    # Half a second of slack: the timer fires every few seconds and must not skip a whole interval.
    return last is None or (now - last).total_seconds() >= interval - 0.5


def _analyse(
    t: _Tick,
    plan: policy_state.Plan,
    settings: analysis.AnalysisSettings,
    router: routing.TrafficRouter | None,
) -> machine.Transition:
    spec, deps = t.spec, t.deps
    if router is not None and t.state.step_index >= 0:
        t.state = _converge(t, plan, router)
    state = t.state
    t.extra["lastTickAt"] = policy_state.format_time(t.now)
    prom = (spec.get("analysis") or {}).get("prometheus") or {}
    lag = analysis.parse_duration(prom.get("lag", "30s"), "spec.analysis.prometheus.lag")
    assert state.started_at is not None
    window = metrics_protocol.Window(
        start=state.started_at,
        end=t.now - timedelta(seconds=lag),
        interval_seconds=settings.interval_seconds,
        selectors=selectors(t.namespace, spec),
        steps=tuple(metrics_protocol.StepChange(s.started_at, s.weight) for s in state.steps),
    )
    try:
        rec = deps.source(t.namespace, spec).fetch(window)
    except metrics_protocol.MetricsUnavailableError as exc:
        reason = f"holding: {exc}"
        t.extra.update(decision=decisions.Decision.HOLD.value, decisionReason=reason)
        t.condition(METRICS_AVAILABLE, False, "PrometheusUnavailable", str(exc))
        _count(t, deps, decisions.Decision.HOLD)
        return machine.no_data(state, plan, reason, t.now)
    if not rec.blocks:
        reason = "waiting for the first complete block"
        t.extra.update(decision=decisions.Decision.CONTINUE.value, decisionReason=reason)
        return machine.judge(state, plan, decisions.Decision.CONTINUE, reason, t.now)
    missing = rec.blocks[-1].missing
    if missing:
        t.condition(
            METRICS_AVAILABLE,
            False,
            "SignalsMissing",
            f"no data in the newest block for: {', '.join(missing)}",
        )
    else:
        t.condition(
            METRICS_AVAILABLE,
            True,
            "MetricsFresh",
            f"{len(rec.blocks)} blocks of {settings.interval_seconds:g}s",
        )
    try:
        judgement = deps.evaluate(rec, settings)
    except Exception as exc:  # a judge failure must hold the canary, never promote it
        log.exception("judge failed on %s/%s", t.namespace, t.name)
        reason = f"holding: the judge failed: {type(exc).__name__}: {exc}"
        t.extra.update(decision=decisions.Decision.HOLD.value, decisionReason=reason)
        _count(t, deps, decisions.Decision.HOLD)
        return machine.no_data(state, plan, reason, t.now)
    t.extra.update(report.judgement_status(judgement, settings))
    _count(t, deps, judgement.decision)
    return machine.judge(state, plan, judgement.decision, judgement.reason, t.now)


def _count(t: _Tick, deps: Deps, decision: decisions.Decision) -> None:
    if deps.export:
        exposition.count_decision(t.namespace, t.name, decision.value)


def _converge(t: _Tick, plan: policy_state.Plan, router: routing.TrafficRouter) -> policy_state.CanaryState:
    """Status is the intent: put traffic back where status says (after a crash, or someone's edit).

    The restore is also written into the step history (``machine.disturbed``), so the blocks that
    carried the stray split are not judged as if they had carried the step's own.
    """
    state = t.state
    try:
        actual = router.get_weights().candidate
        if abs(actual - state.weight) <= 0.5:
            return state
        wanted = plan.weights[min(state.step_index, len(plan.weights) - 1)]
        effective = router.set_weights(wanted)
    except routing.RoutingError as exc:
        t.condition(TRAFFIC_ROUTED, False, "RoutingFailed", str(exc))
        return state
    t.notes.append(
        machine.Note(
            machine.WARNING,
            "RouteRestored",
            f"traffic was {actual:g}% on the candidate; restored {effective.candidate:g}% as in status",
        )
    )
    since = policy_state.parse_time(t.status.get("lastTickAt")) or state.step_started_at or t.now
    return machine.disturbed(state, actual, since, t.now)


def _finalize(t: _Tick, router: routing.TrafficRouter) -> machine.Transition | None:
    spec, deps = t.spec, t.deps
    promoting = t.state.phase is Phase.PROMOTING
    outcome = routing.Outcome.PROMOTED if promoting else routing.Outcome.ROLLED_BACK
    try:
        effective = router.finalize(outcome)
        scale_down = (
            (spec.get("baseline") or {}).get("deployment")
            if promoting and (spec.get("promotion") or {}).get("scaleDownBaseline")
            else (spec.get("candidate") or {}).get("deployment")
            if not promoting and (spec.get("rollback") or {}).get("scaleDownCandidate")
            else None
        )
        if scale_down:
            resources.set_replicas(deps.api, t.namespace, str(scale_down), 0)
    except (routing.RoutingError, rest.KubeError) as exc:
        t.condition(TRAFFIC_ROUTED, False, "RoutingFailed", str(exc))
        return None
    t.condition(
        TRAFFIC_ROUTED, True, "Routed", f"{effective.candidate:g}% on the candidate ({router.provider})"
    )
    settled = dataclasses.replace(t.state, weight=effective.candidate)
    return machine.settle(settled, t.now)


def _route(
    t: _Tick, transition: machine.Transition, router: routing.TrafficRouter | None
) -> policy_state.CanaryState:
    """Apply a step change; on failure the old state stays (nothing is committed that did not happen)."""
    if transition.target_weight is None:
        t.notes.extend(transition.notes)
        return transition.state
    if router is None:
        return t.state
    try:
        effective = router.set_weights(transition.target_weight)
    except routing.RoutingError as exc:
        t.condition(TRAFFIC_ROUTED, False, "RoutingFailed", str(exc))
        return t.state
    t.condition(
        TRAFFIC_ROUTED, True, "Routed", f"{effective.candidate:g}% on the candidate ({router.provider})"
    )
    t.notes.extend(transition.notes)
    return machine.record_weight(transition.state, effective.candidate)


def tick(obj: Mapping[str, Any], deps: Deps) -> TickResult:
    """Run one tick on a RustCanary object (as read from the API)."""
    started = time.perf_counter()
    meta = obj.get("metadata") or {}
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    spec: Mapping[str, Any] = obj.get("spec") or {}
    status: Mapping[str, Any] = obj.get("status") or {}
    now = deps.clock().astimezone(UTC).replace(microsecond=0)
    t = _Tick(
        obj=obj,
        deps=deps,
        started=started,
        spec=spec,
        namespace=namespace,
        name=name,
        generation=int(meta.get("generation", 0) or 0),
        now=now,
        status=status,
        state=policy_state.from_status(status),
        conditions=[dict(c) for c in status.get("conditions") or []],
    )
    action_value = (meta.get("annotations") or {}).get(canaries.ACTION_ANNOTATION)
    result = TickResult()
    state = t.state

    if state.phase.terminal and not action_value:
        if status.get("observedGeneration") != t.generation:
            result.action = "observe"
            return _commit(t, state, result)
        _publish(t, status, deps)
        return result

    try:
        plan = policy_spec.plan_from_spec(spec)
        settings = analysis.settings_from_spec(spec.get("analysis"))
    except ValueError as exc:
        result.action = "reject"
        rejected = machine.reject(state, str(exc), now)
        t.notes.extend(rejected.notes)
        return _commit(t, rejected.state, result)

    router: routing.TrafficRouter | None
    try:
        router = deps.router(namespace, name, spec)
    except routing.RoutingError as exc:
        router = None
        t.condition(TRAFFIC_ROUTED, False, "RoutingFailed", str(exc))

    transition: machine.Transition | None = None
    if action_value:
        result.action = "action"
        try:
            action = policy_state.ManualAction(str(action_value).strip().lower())
        except ValueError:
            known = ", ".join(a.value for a in policy_state.ManualAction)
            note = machine.Note(
                machine.WARNING, "ActionIgnored", f"unknown action {action_value!r}; known: {known}"
            )
            transition = machine.Transition(state, notes=(note,))
        else:
            transition = machine.act(state, plan, action, now, context=str(status.get("decisionReason", "")))
        t.extra["lastAction"] = {
            "action": str(action_value),
            "at": policy_state.format_time(now),
            "result": transition.notes[0].message if transition.notes else "",
        }
    elif state.phase is Phase.PENDING:
        if router is None:
            return _commit(t, state, result)
        result.action = "start"
        try:
            router.ensure()
        except routing.RoutingError as exc:
            t.condition(TRAFFIC_ROUTED, False, "RoutingFailed", str(exc))
            return _commit(t, state, result)
        transition = machine.begin(state, plan, now)
        t.extra["lastTickAt"] = policy_state.format_time(now)
    elif state.phase in (Phase.PROMOTING, Phase.ROLLING_BACK):
        if router is None:
            return _commit(t, state, result)
        result.action = "finalize"
        finalized = _finalize(t, router)
        if finalized is None:
            return _commit(t, state, result)
        transition = finalized
    elif state.phase.analysing and _due(status, settings.interval_seconds, now):
        result.action = "analysis"
        transition = _analyse(t, plan, settings, router)
    else:
        _publish(t, status, deps)
        return result

    new_state = _route(t, transition, router)
    return _commit(t, new_state, result, action_value)


def _commit(
    t: _Tick, state: policy_state.CanaryState, result: TickResult, action_value: Any = None
) -> TickResult:
    """Write status if anything changed, then post Events, clear the action, export metrics."""
    obj, deps, started = t.obj, t.deps, t.started
    # Progressing is True until a terminal phase; its Events come from the policy's notes.
    t.conditions = report.set_condition(
        t.conditions,
        PROGRESSING,
        not state.phase.terminal,
        reason=state.phase.value,
        message=(state.verdict_reason or state.phase.value)
        if state.phase.terminal
        else f"{state.weight:g}% on the candidate",
        now=t.now,
        generation=t.generation,
    )
    patch = policy_state.to_status(state)
    patch.update(t.extra)
    patch["observedGeneration"] = t.generation
    patch["conditions"] = t.conditions
    changed = {k: v for k, v in patch.items() if t.status.get(k) != v}
    meta = obj.get("metadata") or {}
    if changed or action_value:
        try:
            written = canaries.patch_status(
                deps.api, t.namespace, t.name, changed, str(meta.get("resourceVersion", ""))
            )
        except rest.ConflictError:
            result.action = "conflict"
            return result
        except rest.NotFoundError:
            result.action = "gone"
            return result
        result.wrote = True
        result.status = dict(written.get("status") or {})
    else:
        result.status = dict(t.status)
    ref = events.ObjectRef(canaries.API_VERSION, canaries.KIND, t.namespace, t.name, str(meta.get("uid", "")))
    for note in t.notes:
        problem = events.post(deps.api, ref, note.type, note.reason, note.message, now=t.now)
        if problem:
            log.warning("could not post Event %s on %s/%s: %s", note.reason, t.namespace, t.name, problem)
    result.notes = tuple(t.notes)
    if action_value:
        canaries.clear_action(deps.api, t.namespace, t.name, str(action_value))
    _publish(t, result.status, deps)
    if deps.export:
        exposition.observe_reconcile(t.namespace, t.name, time.perf_counter() - started)
    return result


def _publish(t: _Tick, status: Mapping[str, Any], deps: Deps) -> None:
    if deps.export and status:
        exposition.publish(t.namespace, t.name, status, PHASES)


def release(obj: Mapping[str, Any], deps: Deps) -> str:
    """The RustCanary is being deleted: leave traffic in a safe end state and drop its metrics.

    A canary deleted mid-flight goes back to the baseline (one being promoted finishes promoting);
    a finished one is left alone. Failures are reported, not raised: deletion must not hang.
    """
    meta = obj.get("metadata") or {}
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    state = policy_state.from_status(obj.get("status"))
    if deps.export:
        exposition.forget(namespace, name, PHASES)
    if state.phase.terminal or state.phase is Phase.PENDING:
        return f"nothing to restore ({state.phase.value})"
    outcome = routing.Outcome.PROMOTED if state.phase is Phase.PROMOTING else routing.Outcome.ROLLED_BACK
    try:
        weights = deps.router(namespace, name, obj.get("spec") or {}).finalize(outcome)
    except routing.RoutingError as exc:
        return f"could not restore traffic: {exc}"
    return f"deleted in {state.phase.value}: traffic {outcome.value}, {weights.candidate:g}% on the candidate"
