"""One tick of one RustCanary: detect what is due, then dispatch to the one function for it. No kopf.

Called every few seconds per object (by the kopf timer in handlers, or by a test). ``tick`` parses
the spec once (``model.spec``), detects the one cause that applies, in this order: a finished canary
(nothing to do but note a new generation); a spec the policy cannot act on (Invalid: traffic goes back
to the baseline first); a manual ``ferrocanary.io/action``; a Pending canary to start; traffic still
owed its end state (Promoting/RollingBack); an analysis interval passed since ``status.lastTickAt``.
The handler for that cause asks the policy for a ``Transition`` and carries it out in the same tick:
a step weight is routed, an ending is put in place and settled. Then ``_commit`` writes the whole
state to ``.status`` (guarded by the resourceVersion it read), posts an Event per note, clears the
handled annotation and updates the operator's own metrics.

Because every fact lives in status and blocks are re-fetched each time, an operator killed at any
point resumes where it was: a traffic change not yet recorded in status is undone by the next
tick's convergence (status is the intent, and the stray interval is written into the step history so
the judge never reads it under the wrong weight), an ending not yet settled is finished by the next
tick, and a status write that lost a race is simply redone.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from ferrocanary.kube import canaries, events, health, resources, rest
from ferrocanary.metrics import blockstore, exposition, presets, transport
from ferrocanary.metrics import prometheus as prometheus_source
from ferrocanary.metrics import protocol as metrics_protocol
from ferrocanary.model import analysis, decisions, recording
from ferrocanary.model import metrics as metrics_spec
from ferrocanary.model import spec as canary_spec
from ferrocanary.model.decisions import Ending
from ferrocanary.model.reasons import ConditionType, Reason
from ferrocanary.policy import claims, custom_kpis, figures, machine, report
from ferrocanary.policy import state as policy_state
from ferrocanary.policy.state import Phase
from ferrocanary.routing import protocol as routing
from ferrocanary.routing import registry

log = logging.getLogger(__name__)

PHASES: tuple[str, ...] = tuple(p.value for p in Phase)
# The typed spec, why it is refused, and its routing part (see _parse).
_Parsed = tuple["canary_spec.CanarySpec | None", str, "canary_spec.CanarySpec | None"]
Evaluate = Callable[[recording.Recording, analysis.AnalysisSettings], decisions.Judgement]
RouterFactory = Callable[[str, str, canary_spec.CanarySpec], routing.TrafficRouter]
SourceFactory = Callable[[str, canary_spec.CanarySpec], metrics_protocol.MetricsSource]


class TickAction(StrEnum):
    """What a tick found to do (the detected cause), or how its status write ended."""

    IDLE = "idle"  # nothing due
    OBSERVE = "observe"  # a finished canary whose spec changed: record the generation seen
    REJECT = "reject"  # the spec cannot be acted on
    ACTION = "action"  # a manual ferrocanary.io/action
    START = "start"  # Pending: prepare the route, go to the first step
    FINALIZE = "finalize"  # Promoting/RollingBack: put traffic in its end state
    ANALYSIS = "analysis"  # an interval has passed: fetch, judge, decide
    CONFLICT = "conflict"  # the status write lost a race; the next tick redoes it
    GONE = "gone"  # the object was deleted under the tick


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
    routers: RouterFactory | None = None
    sources: SourceFactory | None = None
    clock: Callable[[], datetime] = _now
    export: bool = True
    token_policy: prometheus_source.TokenPolicy = field(default_factory=prometheus_source.TokenPolicy)
    # The platform's namespace of MetricTemplates every canary may reference (templateRef.namespace).
    shared_templates_namespace: str = ""
    # Blocks already fetched, per canary (a cache: status stays the only state that matters).
    blocks: blockstore.BlockStore = field(default_factory=blockstore.BlockStore)
    # Idle ticks (every few seconds per running canary) re-use the spec parsed for the same object
    # version and skip re-exporting a status already exported: caches keyed by resourceVersion.
    parsed: dict[tuple[str, str], tuple[str, _Parsed]] = field(default_factory=dict)
    exported: dict[tuple[str, str], str] = field(default_factory=dict)
    # The canaries of a namespace as this process's watch last saw them, for the start rule (None:
    # no view now, LIST them). Without it (a test, a one-off run) every start LISTs its namespace.
    claimants: Callable[[str], list[claims.Claimant] | None] | None = None

    def router(self, namespace: str, name: str, spec: canary_spec.CanarySpec) -> routing.TrafficRouter:
        if self.routers is not None:
            return self.routers(namespace, name, spec)
        return registry.build(namespace, name, spec, self.api)

    def source(
        self, namespace: str, spec: canary_spec.CanarySpec, name: str = ""
    ) -> metrics_protocol.MetricsSource:
        if self.sources is not None:
            return self.sources(namespace, spec)
        return prometheus_source.from_spec(
            self.api,
            namespace,
            spec.prometheus,
            self.token_policy,
            store=self.blocks,
            owner=(namespace, name),
        )


@dataclass
class TickResult:
    """What a tick did (for logs and tests)."""

    action: TickAction = TickAction.IDLE
    wrote: bool = False
    status: dict[str, Any] = field(default_factory=dict)
    written: Mapping[str, Any] = field(default_factory=dict)  # the object as the last write returned it
    notes: tuple[machine.Note, ...] = ()
    # When the canary next wants a tick without any event (None: not until an event); see _next_at.
    next_at: datetime | None = None
    soon: bool = False  # the look could not run now (every fetch slot busy): retry in RETRY_SECONDS


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
    spec: canary_spec.CanarySpec | None  # None: the spec cannot be acted on (``spec_error`` says why)
    spec_error: str
    routing_spec: canary_spec.CanarySpec | None  # enough of the spec to move traffic, even when invalid
    status: Mapping[str, Any]
    state: policy_state.CanaryState
    conditions: list[dict[str, Any]]
    action_value: str | None
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[machine.Note] = field(default_factory=list)
    router: routing.TrafficRouter | None = None
    # An ending the policy decided in this tick, carried out once Promoting/RollingBack is in status.
    owed: Ending | None = None

    def condition(self, type_: ConditionType, ok: bool, reason: Reason, message: str) -> None:
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

    def routed(self, weights: routing.Weights, provider: str) -> None:
        self.condition(
            ConditionType.TRAFFIC_ROUTED,
            True,
            Reason.ROUTED,
            f"{weights.candidate:g}% on the candidate ({provider})",
        )

    def routing_failed(self, exc: Exception) -> None:
        self.condition(ConditionType.TRAFFIC_ROUTED, False, Reason.ROUTING_FAILED, str(exc))


def _parse(
    raw: Mapping[str, Any],
) -> _Parsed:
    """(the typed spec, why it is refused, its routing part): a refused spec can still move traffic."""
    try:
        spec = canary_spec.parse(raw)
    except ValueError as exc:
        try:
            return None, str(exc), canary_spec.parse_routing(raw)
        except ValueError:
            return None, str(exc), None
    return spec, "", spec


def _with_template(
    api: rest.JsonApi, namespace: str, raw: Mapping[str, Any], shared: str = ""
) -> tuple[Mapping[str, Any], str]:
    """The spec with its MetricTemplate merged in, or why it cannot be (a template that is not there).

    The template is in the canary's namespace, or (``templateRef.namespace``) in ``shared``, the
    platform's namespace of templates every canary may use (chart value ``metricTemplates.namespace``);
    any other namespace is refused, so a tenant never reads another tenant's templates.
    Any other API error (the API server unavailable) propagates: the tick fails before writing anything
    and is retried.
    """
    analysis_spec = raw.get("analysis")
    analysis_spec = analysis_spec if isinstance(analysis_spec, Mapping) else {}
    try:
        name = metrics_spec.template_name(analysis_spec)
        where = metrics_spec.template_namespace(analysis_spec, namespace)
    except ValueError as exc:
        return raw, str(exc)
    if name is None:
        return raw, ""
    if where not in (namespace, shared):
        return raw, (
            f"spec.analysis.metrics.templateRef.namespace: {where} is neither the canary's namespace nor "
            f"the platform's shared templates namespace ({shared or 'none configured'})"
        )
    try:
        template = canaries.read_metric_template(api, where, name)
    except rest.NotFoundError:
        return raw, f"spec.analysis.metrics.templateRef.name: MetricTemplate {where}/{name} not found"
    except rest.KubeError as exc:
        if exc.status not in (401, 403):
            raise
        # The operator may not read it (a chart older than MetricTemplate): say so where users look.
        return raw, (
            f"spec.analysis.metrics.templateRef.name: the operator may not read MetricTemplate "
            f"{where}/{name} (HTTP {exc.status}; its RBAC needs get on metrictemplates)"
        )
    spec = template.get("spec")
    return metrics_spec.spec_with_template(raw, spec if isinstance(spec, Mapping) else {}), ""


def _open(obj: Mapping[str, Any], deps: Deps) -> _Tick:
    meta = obj.get("metadata") or {}
    status: Mapping[str, Any] = obj.get("status") or {}
    key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
    version = str(meta.get("resourceVersion", ""))
    given = obj.get("spec") or {}
    raw, template_error = _with_template(deps.api, key[0], given, deps.shared_templates_namespace)
    # The parse is cached per resourceVersion only for a spec without a MetricTemplate: a template
    # can change under an unchanged canary, so that spec is parsed again at every tick.
    cacheable = bool(version) and raw is given and not template_error
    cached = deps.parsed.get(key) if cacheable else None
    if cached is not None and cached[0] == version:
        spec, spec_error, routing_spec = cached[1]
    else:
        spec, spec_error, routing_spec = _parse(raw)
        if cacheable:
            deps.parsed[key] = (version, (spec, spec_error, routing_spec))
    if template_error:  # refused like any other spec error: traffic still goes back to the baseline
        spec, spec_error = None, template_error
    action = (meta.get("annotations") or {}).get(canaries.ACTION_ANNOTATION)
    return _Tick(
        obj=obj,
        deps=deps,
        started=time.perf_counter(),
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        generation=int(meta.get("generation", 0) or 0),
        now=deps.clock().astimezone(UTC).replace(microsecond=0),
        spec=spec,
        spec_error=spec_error,
        routing_spec=routing_spec,
        status=status,
        state=policy_state.from_status(status),
        conditions=[dict(c) for c in status.get("conditions") or []],
        action_value=str(action) if action else None,
    )


def _due(t: _Tick, spec: canary_spec.CanarySpec) -> bool:
    """Whether a look is due: a block has become complete (``lag`` after its end) since the last one.

    Looks follow the blocks rather than ``lastTickAt + interval``, so a block is judged as soon as
    Prometheus holds it, whatever the phase of the operator's scheduler.
    """
    return t.now >= _due_at(t.now, t.status, t.state, spec)


def _due_at(
    now: datetime, status: Mapping[str, Any], state: policy_state.CanaryState, spec: canary_spec.CanarySpec
) -> datetime:
    """The moment the next look is due: the first block completed after the last look (``now`` if none)."""
    last = policy_state.parse_time(status.get("lastTickAt"))
    interval = spec.settings.interval_seconds
    # A last look more than an interval in our future was written by a replica whose clock runs ahead
    # of ours: look now rather than wait, with no look at all, for our clock to catch up.
    if last is None or (now - last).total_seconds() < -interval:
        return now
    started = state.started_at
    if started is None:
        # Half a second of slack: a look a little early must not skip a whole interval.
        return last + timedelta(seconds=interval - 0.5)
    lag = spec.prometheus.lag_seconds
    complete = max(0, math.floor(((last - started).total_seconds() - lag) / interval + 1e-9))
    return started + timedelta(seconds=lag + (complete + 1) * interval)


def _detect(t: _Tick) -> TickAction:
    """The one cause this tick acts on, in order of precedence."""
    if t.state.phase.terminal and not t.action_value:
        return TickAction.OBSERVE if t.status.get("observedGeneration") != t.generation else TickAction.IDLE
    if t.spec is None:
        return TickAction.FINALIZE if machine.ending_of(t.state) else TickAction.REJECT
    return _detect_running(t, t.spec)


def _detect_running(t: _Tick, spec: canary_spec.CanarySpec) -> TickAction:
    if t.action_value:
        return TickAction.ACTION
    if t.state.phase is Phase.PENDING:
        return TickAction.START
    if machine.ending_of(t.state):
        return TickAction.FINALIZE
    if t.state.phase.analysing and _due(t, spec):
        return TickAction.ANALYSIS
    return TickAction.IDLE


def tick(obj: Mapping[str, Any], deps: Deps) -> TickResult:
    """Run one tick on a RustCanary object (as read from the API)."""
    t = _open(obj, deps)
    cause = _detect(t)
    result = _HANDLERS[cause](t)
    result.action = result.action if result.action in (TickAction.CONFLICT, TickAction.GONE) else cause
    result.next_at = _next_at(t, result)
    return result


# A tick that has to be redone without an event (a Pending canary waiting for its candidate or for
# another canary's claim, traffic still owed its end state, every fetch slot busy) comes this soon.
RETRY_SECONDS = 2.0
# A look is taken this long after its block is complete, so Prometheus' lag has surely passed.
_DUE_SLACK_SECONDS = 0.05


def _next_at(t: _Tick, result: TickResult) -> datetime | None:
    """When this canary next needs a tick if no watch event comes first; None: only on an event.

    A finished canary needs none; a running one its next block's completion (``prometheus.lag``
    after its end: the time limit, safety rules and step times are all judged at looks); anything
    waiting on the world (Pending, an ending owed, a busy Prometheus) a retry a couple of seconds on.
    """
    if result.action is TickAction.GONE:
        return None
    retry = t.now + timedelta(seconds=RETRY_SECONDS)
    if result.action is TickAction.CONFLICT:
        return t.now  # lost a write race: read the object fresh and redo it at once
    if result.soon:
        return retry
    status = result.status if result.wrote else t.status
    state = policy_state.from_status(status)
    if state.phase.terminal:
        return None
    if t.spec is None or not state.phase.analysing or machine.ending_of(state):
        return retry  # Pending, Promoting or RollingBack: waiting on the world
    return _next_look(t, t.spec, status, state)


def _next_look(
    t: _Tick, spec: canary_spec.CanarySpec, status: Mapping[str, Any], state: policy_state.CanaryState
) -> datetime:
    """The moment ``_due`` next holds (now if overdue), on the ticks' whole-second clock."""
    due = _due_at(t.now, status, state, spec)
    # Ticks read the clock in whole seconds: a due time between two seconds is only seen at the next.
    whole = datetime.fromtimestamp(math.ceil(due.timestamp() - 1e-6), UTC)
    return max(t.now, whole + timedelta(seconds=_DUE_SLACK_SECONDS))


# --- one handler per cause ------------------------------------------------------------------------


def _idle(t: _Tick) -> TickResult:
    version = str((t.obj.get("metadata") or {}).get("resourceVersion", ""))
    key = (t.namespace, t.name)
    if not version or t.deps.exported.get(key) != version:
        _publish(t, t.status)
        t.deps.exported[key] = version
    return TickResult()


def _observe(t: _Tick) -> TickResult:
    return _commit(t, t.state)


def _reject(t: _Tick) -> TickResult:
    """Invalid: at once before any traffic moved; later, traffic goes back to the baseline first."""
    if t.action_value:
        _ignore_action(t, f"the spec is refused: {t.spec_error}")
    rejected = machine.reject(t.state, t.spec_error, t.now)
    return _commit(t, _carry_out(t, rejected, _router(t)), clear_action=True)


def _act(t: _Tick) -> TickResult:
    assert t.spec is not None
    assert t.action_value is not None
    router = _router(t)
    try:
        action = policy_state.ManualAction(t.action_value.strip().lower())
    except ValueError:
        known = ", ".join(a.value for a in policy_state.ManualAction)
        note = machine.Note(
            machine.WARNING, Reason.ACTION_IGNORED, f"unknown action {t.action_value!r}; known: {known}"
        )
        transition = machine.Transition(t.state, notes=(note,))
    else:
        context = str(t.status.get("decisionReason", ""))
        transition = machine.act(t.state, t.spec.plan, action, t.now, context=context)
    t.extra["lastAction"] = {
        "action": t.action_value,
        "at": policy_state.format_time(t.now),
        "result": transition.notes[0].message if transition.notes else "",
    }
    return _commit(t, _carry_out(t, transition, router), clear_action=True)


def _start(t: _Tick) -> TickResult:
    assert t.spec is not None
    router = _router(t)
    if router is None:
        return _commit(t, t.state)
    owner = _claimed_by_another(t, t.spec)
    if owner is not None:
        t.condition(ConditionType.TRAFFIC_ROUTED, False, Reason.CLAIMED, owner)
        return _commit(t, t.state)
    try:
        router.ensure()
    except routing.RoutingError as exc:
        t.routing_failed(exc)
        return _commit(t, t.state)
    gated = _candidate_gate(t, t.spec, router)
    if gated is not None:  # not ready yet (stay Pending), or failed (roll back what ensure() did)
        return _commit(t, _carry_out(t, gated, router))
    t.extra["lastTickAt"] = policy_state.format_time(t.now)
    return _commit(t, _carry_out(t, machine.begin(t.state, t.spec.plan, t.now), router))


def _ignore_action(t: _Tick, why: str) -> None:
    """A person's action that this tick cannot honour: say so (Event and lastAction), then drop it."""
    message = f"action {t.action_value!r} ignored: {why}"
    t.notes.append(machine.Note(machine.WARNING, Reason.ACTION_IGNORED, message))
    t.extra["lastAction"] = {
        "action": t.action_value,
        "at": policy_state.format_time(t.now),
        "result": message,
    }


def _claimed_by_another(t: _Tick, spec: canary_spec.CanarySpec) -> str | None:
    """Why this Pending canary may not start yet (see policy/claims.py), read from the RustCanaries
    themselves, so claiming needs no write access to Deployments or routes.

    From the watch's view when the operator keeps one: a LIST of the namespace per start cost the API
    server a whole namespace of objects each time (a hundred canaries' 1 MB per start). The view may
    lag the API, so a canary it names is read fresh before this one waits on it (a canary deleted
    while the watch was down can linger in the view; a finished one may not have reached it yet).
    The view cannot miss an older canary this one must wait for: the watch delivered that canary's
    creation before this one's, and kopf fills the view from its first listing before any look."""
    wanted = canary_spec.claims(spec)
    mine = claims.seniority(t.obj)

    def blocker(others: list[claims.Claimant]) -> tuple[claims.Claimant, claims.Claimed] | None:
        return claims.blocker(t.name, mine, wanted, others)

    try:
        viewed = t.deps.claimants(t.namespace) if t.deps.claimants is not None else None
        if viewed is None:
            found = blocker([claims.claimant(o) for o in canaries.list_objects(t.deps.api, t.namespace)])
        else:
            found = blocker(viewed)
            while found is not None:  # the view's suspect, read fresh: it blocks, or the next one
                fresh = canaries.get(t.deps.api, t.namespace, found[0].name)
                confirmed = blocker([claims.claimant(fresh)] if fresh else [])
                if confirmed is not None:
                    found = confirmed
                    break
                viewed = [c for c in viewed if c.name != found[0].name]
                found = blocker(viewed)
    except rest.KubeError as exc:
        return f"cannot check which objects other RustCanaries use: {exc}"
    if found is None:
        return None
    other, (kind, object_name) = found
    return (
        f"{kind} {t.namespace}/{object_name} is used by RustCanary {t.namespace}/{other.name} "
        f"({other.phase.value}); this one starts when that one has finished"
    )


def _finalize(t: _Tick) -> TickResult:
    """Traffic is still owed its end state (a failed router, or a restart): finish it now."""
    if t.action_value:
        _ignore_action(t, f"traffic is still being put in its end state ({t.state.phase.value})")
    ending = machine.ending_of(t.state)
    router = _router(t)
    assert ending is not None
    if router is None:
        return _commit(t, t.state, clear_action=True)
    return _commit(t, _finish(t, t.state, ending, router), clear_action=True)


def _analyse(t: _Tick) -> TickResult:
    assert t.spec is not None
    router = _router(t)
    contest = None
    if router is not None and t.state.step_index >= 0:
        t.state, contest = _converge(t, t.spec.plan, router)
    t.extra["lastTickAt"] = policy_state.format_time(t.now)
    gated = _candidate_gate(t, t.spec, router)
    try:
        transition = gated if gated is not None else _judge(t, t.spec)
    except _RetrySoonError:
        idle = _idle(t)  # nothing happened in this tick: the next one (seconds away) takes the look
        idle.soon = True
        return idle
    if contest is not None:
        # Judging data whose split someone else sets: never promote or step up on it; the time limit
        # and a rollback still act.
        transition = _contested(t, t.spec, transition, contest)
    return _commit(t, _carry_out(t, transition, router))


_HANDLERS: Mapping[TickAction, Callable[[_Tick], TickResult]] = {
    TickAction.IDLE: _idle,
    TickAction.OBSERVE: _observe,
    TickAction.REJECT: _reject,
    TickAction.ACTION: _act,
    TickAction.START: _start,
    TickAction.FINALIZE: _finalize,
    TickAction.ANALYSIS: _analyse,
}


# --- the candidate's readiness and faults -----------------------------------------------------------

_FAULT_REASONS = {
    health.FaultKind.MEMORY: (Reason.CANDIDATE_MEMORY_FAULT, "memory fault"),
    health.FaultKind.CRASH: (Reason.CANDIDATE_CRASHED, "crash"),
    health.FaultKind.IMAGE: (Reason.CANDIDATE_IMAGE_PULL_FAILED, "image pull failure"),
}


# The analysis-only router: the split is made elsewhere, the operator sends no traffic anywhere.
_SENDS_NO_TRAFFIC = frozenset({"none"})


def _candidate_gate(
    t: _Tick, spec: canary_spec.CanarySpec, router: routing.TrafficRouter | None
) -> machine.Transition | None:
    """None when the candidate may carry its step's traffic; otherwise what to do instead.

    A pod fault rolls back at once, naming its cause. A Deployment short of the replicas it asks
    for holds (no step starts or advances: its Service would have too few endpoints, or none) until
    ``spec.progressDeadline`` has passed since it was last seen ready, then rolls back. Before the
    first step a Deployment scaled to zero is ready (the replicas router scales it up itself).
    An analysis-only canary (``trafficRouting.none``) moves no traffic, so nothing is gated.
    """
    if router is not None and router.provider in _SENDS_NO_TRAFFIC:
        return None
    try:
        found = health.read(t.deps.api, t.namespace, spec.candidate.deployment)
    except rest.KubeError as exc:
        return _candidate_unreadable(t, spec, exc)
    if found.fault is not None:
        reason, label = _FAULT_REASONS[found.fault.kind]
        _candidate_failed_note(t, reason, found.fault.message)
        return machine.candidate_failed(t.state, f"candidate {label}: {found.fault.message}", t.now)
    message = f"{found.available}/{found.desired} candidate replicas available" + (
        "" if found.rolled_out else " (its rollout of the current spec is not finished)"
    )
    pending = t.state.phase is Phase.PENDING
    if found.available_as_desired and (found.desired >= 1 or pending):
        t.condition(ConditionType.CANDIDATE_AVAILABLE, True, Reason.CANDIDATE_READY, message)
        return None
    return _not_ready(t, spec, message)


def _candidate_unreadable(t: _Tick, spec: canary_spec.CanarySpec, exc: rest.KubeError) -> machine.Transition:
    deployment = spec.candidate.deployment
    if not isinstance(exc, rest.NotFoundError):
        return _not_ready(t, spec, f"cannot read the candidate Deployment {deployment}: {exc}")
    if t.state.phase is Phase.PENDING:  # not created yet: its progressDeadline runs
        return _not_ready(t, spec, f"the candidate Deployment {deployment} does not exist")
    # Deleted mid-canary: waiting will not bring it back, and its share of the traffic (or of the
    # replicas router's pods) serves nothing meanwhile. Back to the baseline at once.
    why = f"the candidate Deployment {deployment} (spec.candidate.deployment) was deleted"
    _candidate_failed_note(t, Reason.CANDIDATE_DELETED, why)
    return machine.candidate_failed(t.state, why, t.now)


def _candidate_failed_note(t: _Tick, reason: Reason, message: str) -> None:
    """The condition names the cause, and so does a Warning Event, also when the condition was
    already False (not ready) and so posts none itself."""
    before = len(t.notes)
    t.condition(ConditionType.CANDIDATE_AVAILABLE, False, reason, message)
    if len(t.notes) == before:
        t.notes.append(machine.Note(machine.WARNING, reason, message))


def _not_ready(t: _Tick, spec: canary_spec.CanarySpec, message: str) -> machine.Transition:
    t.condition(ConditionType.CANDIDATE_AVAILABLE, False, Reason.CANDIDATE_NOT_READY, message)
    kind = ConditionType.CANDIDATE_AVAILABLE
    since = next((c.get("lastTransitionTime") for c in t.conditions if c.get("type") == kind), None)
    started = policy_state.parse_time(since) if since else t.now
    deadline = spec.plan.progress_deadline_seconds
    if started is not None and (t.now - started).total_seconds() >= deadline:
        why = f"the candidate was not ready within spec.progressDeadline ({deadline:g}s): {message}"
        _candidate_failed_note(t, Reason.PROGRESS_DEADLINE_EXCEEDED, why)
        return machine.candidate_failed(t.state, why, t.now)
    if t.state.phase is Phase.PENDING:
        return machine.Transition(t.state)
    return _hold(t, f"holding: waiting for the candidate ({message})")


# --- the analysis ---------------------------------------------------------------------------------


def _hold(t: _Tick, reason: str) -> machine.Transition:
    """No judgement this time (no data, or the judge failed): hold, never promote; maxDuration applies."""
    t.extra.update(decision=decisions.Decision.HOLD.value, decisionReason=reason)
    _count(t, decisions.Decision.HOLD)
    return machine.no_data(t.state, t.spec.plan if t.spec else canary_spec.Plan(), reason, t.now)


def _fetch(t: _Tick, spec: canary_spec.CanarySpec) -> recording.Recording:
    """Every block since the start, as Prometheus holds them ``lag`` seconds ago."""
    assert t.state.started_at is not None
    window = metrics_protocol.canary_window(
        t.namespace,
        spec,
        t.state.started_at,
        t.now - timedelta(seconds=spec.prometheus.lag_seconds),
        tuple(metrics_protocol.StepChange(s.started_at, s.weight) for s in t.state.steps),
    )
    return t.deps.source(t.namespace, spec, t.name).fetch(window)


def _signals_condition(t: _Tick, rec: recording.Recording, settings: analysis.AnalysisSettings) -> None:
    missing = rec.blocks[-1].missing
    if missing:
        message = f"no data in the newest block for: {', '.join(missing)}"
        t.condition(ConditionType.METRICS_AVAILABLE, False, Reason.SIGNALS_MISSING, message)
    else:
        message = f"{len(rec.blocks)} blocks of {settings.interval_seconds:g}s"
        t.condition(ConditionType.METRICS_AVAILABLE, True, Reason.METRICS_FRESH, message)


class _RetrySoonError(Exception):
    """The look cannot run in this tick but nothing has to be recorded: the next tick takes it."""


def _judge(t: _Tick, spec: canary_spec.CanarySpec) -> machine.Transition:
    try:
        rec = _fetch(t, spec)
    except transport.BusyError as exc:
        # Every fetch slot of this Prometheus is taken by other canaries' looks: retry in a couple of
        # seconds rather than record a hold, unless this tick already did something (a route restore).
        if not t.notes and t.state == policy_state.from_status(t.status):
            raise _RetrySoonError from exc
        t.condition(ConditionType.METRICS_AVAILABLE, False, Reason.PROMETHEUS_UNAVAILABLE, str(exc))
        return _hold(t, f"holding: {exc}")
    except metrics_protocol.MetricsUnavailableError as exc:
        refused = isinstance(exc, metrics_protocol.MetricsNotAllowedError)
        why = Reason.PROMETHEUS_NOT_ALLOWED if refused else Reason.PROMETHEUS_UNAVAILABLE
        t.condition(ConditionType.METRICS_AVAILABLE, False, why, str(exc))
        return _hold(t, f"holding: {exc}")
    if not rec.blocks:
        reason = "waiting for the first complete block"
        t.extra.update(decision=decisions.Decision.CONTINUE.value, decisionReason=reason)
        return machine.judge(
            t.state, spec.plan, decisions.Decision.CONTINUE, reason, t.now, step_judged=False
        )
    _signals_condition(t, rec, spec.settings)
    try:
        judgement = custom_kpis.evaluate(t.deps.evaluate, rec, spec)  # built-in and custom KPIs
    except Exception as exc:  # a judge failure must hold the canary, never promote it
        log.exception("judge failed on %s/%s", t.namespace, t.name)
        return _hold(t, f"holding: the judge failed: {type(exc).__name__}: {exc}")
    judgement = presets.with_bucket_advice(judgement, spec)  # Istio's/ingress-nginx's default buckets
    priced = analysis.with_prices(spec.settings, rec.prices)
    t.extra.update(report.judgement_status(judgement, priced))
    t.extra["arms"] = figures.arm_figures(rec, priced)  # what the judge read, whatever the preset
    _count(t, judgement.decision)
    return machine.judge(
        t.state,
        spec.plan,
        judgement.decision,
        judgement.reason,
        t.now,
        step_judged=_step_judged(t.state, rec, spec.settings),
    )


def _step_judged(
    state: policy_state.CanaryState, rec: recording.Recording, settings: analysis.AnalysisSettings
) -> bool:
    """Whether a complete block past the warm-up at the current step's weight is in ``rec``."""
    if state.step_started_at is None:
        return False
    settled_from = state.step_started_at + timedelta(seconds=settings.warmup_seconds)
    return any(block.start >= settled_from for block in rec.blocks)


def _count(t: _Tick, decision: decisions.Decision) -> None:
    if t.deps.export:
        exposition.count_decision(t.namespace, t.name, decision.value)


# --- traffic --------------------------------------------------------------------------------------


def _router(t: _Tick) -> routing.TrafficRouter | None:
    """The canary's router, built once per tick; None (and the condition says why) when it cannot be."""
    if t.router is None and t.routing_spec is not None:
        try:
            t.router = t.deps.router(t.namespace, t.name, t.routing_spec)
        except routing.RoutingError as exc:
            t.routing_failed(exc)
    return t.router


def _converge(
    t: _Tick, plan: canary_spec.Plan, router: routing.TrafficRouter
) -> tuple[policy_state.CanaryState, str | None]:
    """Status is the intent: put traffic back where status says (after a crash, or someone's edit).

    The restore is also written into the step history (``machine.disturbed``), so the blocks that
    carried the stray split are not judged as if they had carried the step's own. After
    ``MAX_RESTORES_PER_STEP`` restores in one step the route is left alone and the second value
    says why (the canary then holds): someone else owns it, and a tug of war helps nobody.
    """
    state = t.state
    try:
        actual = router.get_weights().candidate
        if abs(actual - state.weight) <= 0.5:
            return state, None
        if machine.contested(state):
            restores = machine.restores_in_step(state)
            return state, (
                f"the route ({router.provider}) was moved off its step again ({actual:g}% on the candidate, "
                f"{state.weight:g}% in status) after {restores} restores at this step: "
                "something else keeps writing it (a GitOps sync, a pipeline, another canary)"
            )
        wanted = plan.weights[min(state.step_index, len(plan.weights) - 1)]
        effective = router.set_weights(wanted)
    except routing.RoutingError as exc:
        t.routing_failed(exc)
        return state, None
    t.notes.append(
        machine.Note(
            machine.WARNING,
            Reason.ROUTE_RESTORED,
            f"traffic was {actual:g}% on the candidate; restored {effective.candidate:g}% as in status",
        )
    )
    since = policy_state.parse_time(t.status.get("lastTickAt")) or state.step_started_at or t.now
    return machine.disturbed(state, actual, since, t.now), None


def _contested(
    t: _Tick, spec: canary_spec.CanarySpec, transition: machine.Transition, why: str
) -> machine.Transition:
    """The route is contested: keep a rollback or the time limit, turn anything else into a hold."""
    t.condition(ConditionType.TRAFFIC_ROUTED, False, Reason.ROUTE_CONTESTED, why)
    if transition.ending is Ending.ROLLED_BACK:
        return transition
    t.extra.update(decision=decisions.Decision.HOLD.value, decisionReason=f"holding: {why}")
    return machine.no_data(t.state, spec.plan, f"holding: {why}", t.now)


def _scale_down(t: _Tick, ending: Ending) -> None:
    """The build that lost, at 0 replicas, when the spec asks for it."""
    spec = t.routing_spec
    if spec is None:
        return
    if ending is Ending.PROMOTED and spec.scale_down_baseline and spec.baseline.deployment:
        arm, deployment = "baseline", spec.baseline.deployment
    elif ending is Ending.ROLLED_BACK and spec.scale_down_candidate and spec.candidate.deployment:
        arm, deployment = "candidate", spec.candidate.deployment
    else:
        return
    try:
        resources.set_replicas(t.deps.api, t.namespace, deployment, 0)
    except rest.NotFoundError:
        if ending is Ending.ROLLED_BACK:
            return  # the candidate was deleted (CandidateDeleted): it runs no pods, the end state
        # A baseline that is not there at promotion is a spec that names the wrong Deployment (or
        # one in another namespace): say so, naming the field, rather than promote as if it were done.
        raise routing.RoutingError(
            f"scaling down Deployment {t.namespace}/{deployment} (spec.{arm}.deployment): not found"
        ) from None


def _finish(
    t: _Tick, state: policy_state.CanaryState, ending: Ending, router: routing.TrafficRouter
) -> policy_state.CanaryState:
    """Put traffic in its end state and settle; on failure the phase stays and the next tick retries."""
    try:
        effective = router.finalize(ending)
        _scale_down(t, ending)
    except (routing.RoutingError, rest.KubeError) as exc:
        t.routing_failed(exc)
        return state
    t.routed(effective, router.provider)
    settled = machine.settle(dataclasses.replace(state, weight=effective.candidate), t.now)
    t.notes.extend(settled.notes)
    return settled.state


def _carry_out(
    t: _Tick, transition: machine.Transition, router: routing.TrafficRouter | None
) -> policy_state.CanaryState:
    """Do what the policy's transition says, in this tick; what did not happen is not committed."""
    if transition.target_weight is not None:
        if router is None:
            return t.state
        try:
            effective = router.set_weights(transition.target_weight)
        except routing.RoutingError as exc:
            t.routing_failed(exc)
            return t.state
        t.routed(effective, router.provider)
        t.notes.extend(transition.notes)
        return machine.record_weight(transition.state, effective.candidate)
    t.notes.extend(transition.notes)
    # An ending is carried out after Promoting/RollingBack has been written (see _commit): finishing
    # first and then losing the write would let the next tick route traffic back to a build that
    # was just scaled to zero.
    t.owed = transition.ending if router is not None else None
    return transition.state


# --- status, Events, metrics ----------------------------------------------------------------------


def _progressing(t: _Tick, state: policy_state.CanaryState) -> None:
    """Progressing is True until a terminal phase; its Events come from the policy's notes."""
    t.conditions = report.set_condition(
        t.conditions,
        ConditionType.PROGRESSING,
        not state.phase.terminal,
        reason=state.phase.value,
        message=(state.verdict_reason or state.phase.value)
        if state.phase.terminal
        else f"{state.weight:g}% on the candidate",
        now=t.now,
        generation=t.generation,
    )


def _commit(t: _Tick, state: policy_state.CanaryState, *, clear_action: bool = False) -> TickResult:
    """Write status if anything changed, then post Events, clear the action, export metrics."""
    result = TickResult()
    written: Mapping[str, Any] = {}
    _progressing(t, state)
    patch = policy_state.to_status(state)
    patch.update(t.extra)
    patch["observedGeneration"] = t.generation
    patch["conditions"] = t.conditions
    changed = {k: v for k, v in patch.items() if t.status.get(k) != v}
    action_value = t.action_value if clear_action else None
    meta = t.obj.get("metadata") or {}
    if changed or action_value:
        try:
            written = canaries.patch_status(
                t.deps.api, t.namespace, t.name, changed, str(meta.get("resourceVersion", ""))
            )
        except rest.ConflictError:
            return TickResult(action=TickAction.CONFLICT)
        except rest.NotFoundError:
            return TickResult(action=TickAction.GONE)
        result.wrote = True
        result.written = written
        result.status = dict(written.get("status") or {})
    else:
        result.status = dict(t.status)
    finishing_now = t.owed is not None and result.wrote and t.router is not None
    if not finishing_now:  # otherwise posted with the ending's own (_finish_owed)
        _post_events(t, str(meta.get("uid", "")))
    result.notes = tuple(t.notes)
    if action_value:
        canaries.clear_action(t.deps.api, t.namespace, t.name, action_value)
        result.written = {}  # the annotation write changed the object again: whoever caches it re-reads
    if finishing_now:
        return _finish_owed(t, state, written, result)
    _publish(t, result.status)
    if state.phase.terminal:
        # A finished canary is looked at no more: drop its blocks and its per-look series (decision
        # counts, tick durations); its phase, weight and KPI gauges stay while the object exists.
        t.deps.blocks.forget((t.namespace, t.name))
        t.deps.parsed.pop((t.namespace, t.name), None)
        if t.deps.export:
            exposition.forget_activity(t.namespace, t.name)
    elif t.deps.export:
        exposition.observe_reconcile(t.namespace, t.name, time.perf_counter() - t.started)
    return result


_LEAVING = frozenset({Phase.PROMOTING.value, Phase.ROLLING_BACK.value})


def _finish_owed(
    t: _Tick, state: policy_state.CanaryState, written: Mapping[str, Any], first: TickResult
) -> TickResult:
    """Promoting/RollingBack is in status: put traffic in its end state and write the settled phase,
    guarded by the resourceVersion of the first write. If anything fails here, status already says
    what is owed and the next tick's FINALIZE finishes it."""
    assert t.owed is not None
    assert t.router is not None
    ending, t.owed = t.owed, None
    t.obj, t.status = written, first.status
    t.extra = {}
    # The first write's Events go out with the second's. When traffic reaches its end state in this
    # same look, "Promoting"/"RollingBack" is not posted: "Promoted"/"RolledBack" follows within the
    # second and carries the same verdict, and at 1,000 canaries each Event is an API request. When
    # it does not (a routing failure), the Event that says it is leaving goes out, with the failure.
    t.notes = []
    settled = _finish(t, state, ending, t.router)
    finished = tuple(t.notes)
    carried = [n for n in first.notes if not (settled.phase.terminal and n.reason in _LEAVING)]
    t.notes = [*carried, *finished]
    second = _commit(t, settled)
    if second.action in (TickAction.CONFLICT, TickAction.GONE):  # the second write, and its Events, lost
        t.notes = list(first.notes)
        _post_events(t, str((written.get("metadata") or {}).get("uid", "")))
    second.notes = first.notes + finished
    second.written = second.written if second.wrote else first.written
    second.wrote = True
    return second


def _post_events(t: _Tick, uid: str) -> None:
    ref = events.ObjectRef(canaries.API_VERSION, canaries.KIND, t.namespace, t.name, uid)
    for note in t.notes:
        problem = events.post(t.deps.api, ref, note.type, note.reason, note.message, now=t.now)
        if problem:
            log.warning("could not post Event %s on %s/%s: %s", note.reason, t.namespace, t.name, problem)


def _publish(t: _Tick, status: Mapping[str, Any]) -> None:
    if t.deps.export and status:
        exposition.publish(t.namespace, t.name, status, PHASES)


@dataclass(frozen=True)
class Released:
    """What ``release`` did: ``restored`` is False only when traffic could not be put back."""

    restored: bool
    message: str


def release(obj: Mapping[str, Any], deps: Deps) -> Released:
    """The RustCanary is being deleted: leave traffic in a safe end state and drop its metrics.

    A canary deleted mid-flight goes back to the baseline (one being promoted finishes promoting);
    a finished one is left alone. A failure is returned, not raised: the handler retries a bounded
    number of times with a Warning Event each, so deletion never hangs and never fails silently.
    """
    meta = obj.get("metadata") or {}
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    state = policy_state.from_status(obj.get("status"))
    deps.blocks.forget((namespace, name))
    deps.parsed.pop((namespace, name), None)
    deps.exported.pop((namespace, name), None)
    if deps.export:
        exposition.forget(namespace, name, PHASES)
    if state.phase.terminal:
        return Released(True, f"nothing to restore ({state.phase.value})")
    if state.phase is Phase.PENDING:
        return _tidy_pending(obj, namespace, name, deps)
    ending = machine.ending_of(state) or Ending.ROLLED_BACK
    try:
        spec = canary_spec.parse_routing(obj.get("spec") or {})
        weights = deps.router(namespace, name, spec).finalize(ending)
    except (routing.RoutingError, ValueError) as exc:
        return Released(False, f"could not restore traffic: {exc}")
    return Released(
        True,
        f"deleted in {state.phase.value}: traffic {ending.value}, {weights.candidate:g}% on the candidate",
    )


# Routers whose ensure() only reads: a canary deleted before its first step left nothing behind.
_ENSURE_ONLY_READS = frozenset({"replicas", "none"})


def _tidy_pending(obj: Mapping[str, Any], namespace: str, name: str, deps: Deps) -> Released:
    """A canary deleted before its first step: remove what ensure() may have added (the candidate's
    backendRef at weight 0, the nginx canary Ingress), which would otherwise block the next canary.
    A routing object that does not exist holds nothing of ours; any other failure is retried."""
    try:
        spec = canary_spec.parse_routing(obj.get("spec") or {})
        router = deps.router(namespace, name, spec)
        if router.provider in _ENSURE_ONLY_READS:
            return Released(True, "nothing to restore (Pending)")
        router.finalize(Ending.ROLLED_BACK)
    except routing.ObjectNotFoundError as exc:
        return Released(True, f"nothing to restore (Pending): {exc}")
    except (routing.RoutingError, ValueError) as exc:
        return Released(False, f"could not remove the candidate from the route: {exc}")
    return Released(True, "deleted in Pending: the candidate removed from the route")
