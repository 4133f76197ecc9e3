"""The RustCanary handlers: a short timer that runs one reconcile tick, and a release on deletion.

kopf timers have a fixed interval while each canary has its own ``spec.analysis.interval``, so the
timer fires every ``FERROCANARY_TIMER_SECONDS`` (default 2 s) and reconcile decides from
``status.lastTickAt`` whether an analysis is due; manual actions, starts and endings act at once.
The tick reads the object fresh from the API (not kopf's cached body), so it never acts on a status
older than its own last write.

A tick and the release on deletion never overlap for one canary (kopf runs them on different
threads): each holds the canary's lock, so a tick in flight cannot move traffic after the release
restored it, and a tick that starts after the release sees the deletion and does nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import kopf

from ferrocanary import reconcile
from ferrocanary.kube import canaries
from ferrocanary.model.reasons import Reason
from ferrocanary.policy import machine

TIMER_SECONDS = float(os.environ.get("FERROCANARY_TIMER_SECONDS", "2"))


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def canary_lock(uid: str) -> threading.Lock:
    """The one lock of a canary (by uid) shared by its ticks and its release in this process."""
    with _locks_guard:
        return _locks.setdefault(uid, threading.Lock())


def _forget_lock(uid: str) -> None:
    with _locks_guard:
        _locks.pop(uid, None)


def _deps(memo: Any) -> reconcile.Deps:
    deps: reconcile.Deps = memo["deps"]
    return deps


@kopf.timer(
    canaries.GROUP,
    canaries.VERSION,
    canaries.PLURAL,
    id="tick",
    interval=TIMER_SECONDS,
    backoff=TIMER_SECONDS,
)
def tick(
    name: str, namespace: str | None, memo: Any, logger: kopf.Logger, uid: str | None = None, **_: Any
) -> None:
    deps = _deps(memo)
    with canary_lock(uid or f"{namespace}/{name}"):
        fresh = canaries.get(deps.api, namespace or "", name)
        if fresh is None or (fresh.get("metadata") or {}).get("deletionTimestamp"):
            return
        result = reconcile.tick(fresh, deps)
    for note in result.notes:
        logger.log(
            logging.WARNING if note.type == machine.WARNING else logging.INFO,
            "%s: %s",
            note.reason,
            note.message,
        )
    if result.action is reconcile.TickAction.CONFLICT:
        logger.debug("status changed under the tick; retrying on the next one")


# A failed restore is retried this many times, RELEASE_DELAY seconds apart, before the deletion goes
# ahead: long enough to ride out a conflict or an apiserver blip, bounded so deletion cannot hang.
RELEASE_ATTEMPTS = 6
RELEASE_DELAY = 10.0


@kopf.on.delete(canaries.GROUP, canaries.VERSION, canaries.PLURAL, id="release", optional=True)
def release(body: kopf.Body, memo: Any, logger: kopf.Logger, retry: int = 0, **_: Any) -> None:
    meta = body.get("metadata") or {}
    uid = str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")
    with canary_lock(uid):  # waits for a tick in flight; later ticks see the deletion
        outcome = reconcile.release(body, _deps(memo))
    if outcome.restored:
        logger.info(outcome.message)
        _forget_lock(uid)
        return
    attempt = f"attempt {retry + 1}/{RELEASE_ATTEMPTS}"
    if retry + 1 < RELEASE_ATTEMPTS:
        kopf.warn(body, reason=Reason.RELEASE_FAILED, message=f"{outcome.message} ({attempt}; retrying)")
        raise kopf.TemporaryError(outcome.message, delay=RELEASE_DELAY)
    kopf.warn(
        body,
        reason=Reason.RELEASE_FAILED,
        message=f"{outcome.message} ({attempt}; giving up: check the route and both Deployments by hand)",
    )
    logger.error("giving up restoring traffic after %d attempts: %s", RELEASE_ATTEMPTS, outcome.message)
