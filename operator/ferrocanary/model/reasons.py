"""Every condition type and every Event or condition reason the operator writes, in one place.

Kubernetes API conventions: condition types are adjectives or past participles whose True is the good
state; reasons are CamelCase words a machine can match on. Besides these, a phase's name is the
reason of the Event that enters it (``Promoting``, ``RolledBack``, ...) and of the ``Progressing``
condition, so ``Phase`` values are reasons too. docs/verdicts.md explains each one.
"""

from __future__ import annotations

from enum import StrEnum


class ConditionType(StrEnum):
    """The conditions in ``.status.conditions``."""

    PROGRESSING = "Progressing"  # True until a terminal phase; its reason is the phase
    TRAFFIC_ROUTED = "TrafficRouted"  # the router did what the last tick asked
    METRICS_AVAILABLE = "MetricsAvailable"  # the newest block has every signal
    CANDIDATE_AVAILABLE = "CandidateAvailable"  # the candidate Deployment has its replicas available


class Reason(StrEnum):
    """Reasons of Events and conditions, other than phase names."""

    # the rollout (Events from the policy)
    STARTED = "Started"
    STEP_ADVANCED = "StepAdvanced"
    WAITING_PROMOTION = "WaitingPromotion"
    PAUSED = "Paused"
    RESUMED = "Resumed"
    ACTION_IGNORED = "ActionIgnored"
    INVALID = "Invalid"
    # traffic (TrafficRouted, and an Event when status had to be enforced)
    ROUTED = "Routed"
    ROUTING_FAILED = "RoutingFailed"
    ROUTE_RESTORED = "RouteRestored"
    ROUTE_CONTESTED = "RouteContested"  # moved off its step again after the last allowed restore
    RELEASE_FAILED = "ReleaseFailed"  # a deleted canary's traffic could not be put back (retried)
    CLAIMED = "ClaimedByAnother"  # an object this canary needs is used by another running canary
    # the candidate's Deployment and pods (CandidateAvailable; the fault reasons end the canary)
    CANDIDATE_READY = "CandidateReady"
    CANDIDATE_NOT_READY = "CandidateNotReady"  # traffic waits: fewer replicas available than needed
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"  # not ready within spec.progressDeadline
    CANDIDATE_MEMORY_FAULT = "CandidateMemoryFault"  # OOMKilled, SIGSEGV, SIGABRT or a Rust panic
    CANDIDATE_CRASHED = "CandidateCrashed"  # any other non-zero exit, or CrashLoopBackOff
    CANDIDATE_IMAGE_PULL_FAILED = "CandidateImagePullFailed"  # ImagePullBackOff / ErrImagePull
    CANDIDATE_DELETED = "CandidateDeleted"  # the candidate Deployment was deleted mid-canary
    # signals (MetricsAvailable)
    METRICS_FRESH = "MetricsFresh"
    SIGNALS_MISSING = "SignalsMissing"
    PROMETHEUS_UNAVAILABLE = "PrometheusUnavailable"
    PROMETHEUS_NOT_ALLOWED = "PrometheusNotAllowed"  # the platform's policy refuses the spec's settings
