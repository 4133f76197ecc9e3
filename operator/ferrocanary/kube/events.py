"""Kubernetes Events on a RustCanary: one for every phase transition, step, hold and manual action.

core/v1 Events, so ``kubectl describe rustcanary`` and ``kubectl get events`` show them. Posting is
best effort: a lost Event must never stop a rollback, so errors are returned, not raised.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ferrocanary.kube import rest

COMPONENT = "ferrocanary"


@dataclass(frozen=True)
class ObjectRef:
    """The object an Event is about."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str = ""


def event_body(ref: ObjectRef, type_: str, reason: str, message: str, now: datetime) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:10]
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{ref.name}.{suffix}", "namespace": ref.namespace},
        "involvedObject": {
            "apiVersion": ref.api_version,
            "kind": ref.kind,
            "namespace": ref.namespace,
            "name": ref.name,
            "uid": ref.uid,
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": COMPONENT},
        # Legacy timestamps only: a core/v1 Event with eventTime must also carry the new-style
        # reporting fields, and kubectl shows either kind the same way.
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


def post(
    api: rest.JsonApi, ref: ObjectRef, type_: str, reason: str, message: str, *, now: datetime | None = None
) -> str | None:
    """Create the Event; returns None, or the error text when the API refused it."""
    body = event_body(ref, type_, reason, message, now or datetime.now(UTC))
    try:
        api.post(f"/api/v1/namespaces/{rest.segment(ref.namespace)}/events", body)
    except (rest.KubeError, OSError) as exc:
        return str(exc)
    return None
