"""The RustCanary handlers: a short timer that runs one reconcile tick, and a release on deletion.

kopf timers have a fixed interval while each canary has its own ``spec.analysis.interval``, so the
timer fires every ``FERROCANARY_TIMER_SECONDS`` (default 2 s) and reconcile decides from
``status.lastTickAt`` whether an analysis is due; manual actions, starts and endings act at once.
The tick and the release on deletion never overlap for one canary (kopf runs them on different
threads): each holds the canary's lock, so a tick in flight cannot move traffic after the release
restored it, and a tick that starts after a release (even from a watched body that predates the
deletion) finds the canary released and does nothing.

Watch-driven: the timer runs only while a canary can still act (``_live``: not finished, or a manual
action or a new spec generation waiting); kopf stops it when the filter stops matching and starts it
again on the watch event that makes it match, so a finished canary costs nothing between events. The
tick reads the object kopf's watch keeps up to date, or the status this operator wrote itself when
that is newer (the watch may not have delivered our own write yet), so it never acts on a status
older than its own last write and does not GET the object every tick. After a lost write race
(a conflict) it reads the object fresh once.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

import kopf

from ferrocanary import reconcile
from ferrocanary.kube import canaries
from ferrocanary.model.reasons import Reason
from ferrocanary.policy import machine, state

TIMER_SECONDS = float(os.environ.get("FERROCANARY_TIMER_SECONDS", "2"))
# Sharding: only RustCanaries whose labels match (``key=value,key2`` with kopf's semantics: a bare key
# must be present). Several installations with disjoint selectors (or namespaces) never share a canary.
SHARD_SELECTOR = os.environ.get("FERROCANARY_SHARD_SELECTOR", "")


def shard_labels(selector: str) -> dict[str, Any]:
    """kopf's ``labels=`` filter for a ``key=value,key`` selector (empty: every canary)."""
    labels: dict[str, Any] = {}
    for part in (p.strip() for p in selector.split(",")):
        if not part:
            continue
        key, eq, value = part.partition("=")
        labels[key.strip()] = value.strip() if eq else kopf.PRESENT
    return labels


LABELS = shard_labels(SHARD_SELECTOR)


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def canary_lock(uid: str) -> threading.Lock:
    """The one lock of a canary (by uid) shared by its ticks and its release in this process."""
    with _locks_guard:
        return _locks.setdefault(uid, threading.Lock())


def _forget_lock(uid: str) -> None:
    with _locks_guard:
        _locks.pop(uid, None)


# Canaries this operator has released, newest last (kept in its memo), so a tick from a watched body
# that predates the deletion does nothing. Bounded: a uid is never reused, and a tick comes within
# seconds of a release.
RELEASED_REMEMBERED = 4096


def _released(memo: Any) -> dict[str, None]:
    with _locks_guard:
        found = memo.get("released")
        if found is None:
            found = memo["released"] = {}
        assert isinstance(found, dict)
        return found


def _mark_released(memo: Any, uid: str) -> None:
    released = _released(memo)
    with _locks_guard:
        released[uid] = None
        while len(released) > RELEASED_REMEMBERED:
            del released[next(iter(released))]


def _was_released(memo: Any, uid: str) -> bool:
    released = _released(memo)
    with _locks_guard:
        return uid in released


def _deps(memo: Any) -> reconcile.Deps:
    deps: reconcile.Deps = memo["deps"]
    return deps


def _live(
    status: Mapping[str, Any], meta: Mapping[str, Any], annotations: Mapping[str, str], **_: Any
) -> bool:
    """Whether the canary may still do something: kopf runs its timer only while this holds."""
    if canaries.ACTION_ANNOTATION in annotations or meta.get("deletionTimestamp"):
        return True
    if not state.from_status(status).phase.terminal:
        return True
    return status.get("observedGeneration") != meta.get("generation")


def _version(obj: Mapping[str, Any]) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion", ""))
    except ValueError:
        return -1


class Written:
    """The object as this operator last wrote it, per canary, and which canaries must be read fresh."""

    def __init__(self) -> None:
        self._objects: dict[tuple[str, str], dict[str, Any]] = {}
        self._stale: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def newest(self, key: tuple[str, str], body: Mapping[str, Any]) -> dict[str, Any] | None:
        """The newer of kopf's body and our own last write; None when it must be read fresh."""
        with self._lock:
            if key in self._stale:
                return None
            mine = self._objects.get(key)
        seen = dict(body)
        if mine is None or (mine.get("metadata") or {}).get("uid") != (seen.get("metadata") or {}).get("uid"):
            return seen
        return mine if _version(mine) > _version(seen) else seen

    def record(self, key: tuple[str, str], result: reconcile.TickResult) -> None:
        with self._lock:
            lost = result.action in (reconcile.TickAction.CONFLICT, reconcile.TickAction.GONE)
            if lost or (result.wrote and not result.written):
                self._objects.pop(key, None)
                self._stale.add(key)
                return
            self._stale.discard(key)
            if result.written:
                self._objects[key] = dict(result.written)

    def forget(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._objects.pop(key, None)
            self._stale.discard(key)


def _written(memo: Any) -> Written:
    found = memo.get("written")
    if found is None:
        found = memo["written"] = Written()
    assert isinstance(found, Written)
    return found


@kopf.timer(
    canaries.GROUP,
    canaries.VERSION,
    canaries.PLURAL,
    id="tick",
    interval=TIMER_SECONDS,
    backoff=TIMER_SECONDS,
    when=_live,
    labels=LABELS or None,
)
def tick(
    name: str,
    namespace: str | None,
    memo: Any,
    logger: kopf.Logger,
    *,
    body: Mapping[str, Any] | None = None,
    uid: str | None = None,
    **_: Any,
) -> None:
    deps = _deps(memo)
    key = (namespace or "", name)
    written = _written(memo)
    lock_id = uid or f"{namespace}/{name}"
    with canary_lock(lock_id):
        if _was_released(memo, lock_id):
            return
        current = written.newest(key, body) if body is not None else None
        if current is None:
            current = canaries.get(deps.api, namespace or "", name)
        if current is None or (current.get("metadata") or {}).get("deletionTimestamp"):
            return
        result = reconcile.tick(current, deps)
        written.record(key, result)
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


@kopf.on.delete(
    canaries.GROUP, canaries.VERSION, canaries.PLURAL, id="release", optional=True, labels=LABELS or None
)
def release(body: kopf.Body, memo: Any, logger: kopf.Logger, retry: int = 0, **_: Any) -> None:
    meta = body.get("metadata") or {}
    uid = str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")
    with canary_lock(uid):  # waits for a tick in flight; later ticks see the release
        _written(memo).forget((str(meta.get("namespace", "")), str(meta.get("name", ""))))
        outcome = reconcile.release(body, _deps(memo))
        if outcome.restored:
            _mark_released(memo, uid)
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
    _mark_released(memo, uid)  # the finalizer goes: no tick may act on this canary again
