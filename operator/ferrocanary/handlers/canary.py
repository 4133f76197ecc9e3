"""The RustCanary handlers: watch events queue looks, one scheduler runs them; a release on deletion.

No per-canary timer: ``scheduling.Scheduler`` keeps each canary under the time it next wants a look
(its next block complete, as ``reconcile.tick`` says in ``TickResult.next_at``; a retry a couple of
seconds on; or now) and a pool of ``FERROCANARY_WORKERS`` threads serves it, the most overdue first.
Watch events only queue: ``seen`` (kopf.on.event) keeps the newest body of each canary and wakes it
at once when the object changed under us (spec, annotations, or a status we did not write), so
manual actions act within a second or so. A canary with nothing due costs nothing.

Which canaries this process may act on is kopf's answer, through a daemon per canary (``owned``)
that does no work: kopf runs it only while the canary may still act (``_live``: not finished, or an
action or a new spec waiting), only in the replica its peering made active (kopf stops every daemon
when it pauses, and starts them again from the relisting when it resumes), only for the shard's
labels, and stops it when the canary is deleted; while it runs, the scheduler owns the canary. The
daemon also keeps kopf's finalizer on the canary, as the timer did, for the release on deletion.

The look and the release on deletion never overlap for one canary (they run on different threads):
each holds the canary's lock, so a look in flight cannot move traffic after the release restored it,
and a look that starts after a release (even from a watched body that predates the deletion) finds
the canary released and does nothing. A look reads the newest watched body, or the status this
operator wrote itself when that is newer (the watch may not have delivered our own write yet), so
it never acts on a status older than its own last write and does not GET the object per look.
After a lost write race (a conflict) it reads the object fresh once.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

import kopf

from ferrocanary import reconcile, scheduling
from ferrocanary.kube import canaries
from ferrocanary.model.reasons import Reason
from ferrocanary.policy import claims, machine, state

log = logging.getLogger(__name__)

# A failed look (an exception: the API server unavailable) is retried this many seconds later.
TIMER_SECONDS = float(os.environ.get("FERROCANARY_TIMER_SECONDS", "2"))
# The soonest next look after one that found nothing due.
IDLE_MIN_SECONDS = 0.25
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


def _lean(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A shallow copy of ``obj`` without ``metadata.managedFields``, which the operator never reads:
    at 1,000 canaries they were half of every object it keeps (18 of 35 MB for one copy of each)."""
    out = dict(obj)
    meta = out.get("metadata")
    if isinstance(meta, Mapping) and "managedFields" in meta:
        out["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return out


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
                self._objects[key] = _lean(result.written)

    def forget(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._objects.pop(key, None)
            self._stale.discard(key)

    def mine(self, key: tuple[str, str], body: Mapping[str, Any]) -> bool:
        """Whether ``body`` is the object exactly as our own last write left it (its watch event)."""
        with self._lock:
            ours = self._objects.get(key)
        if ours is None:
            return False
        meta, seen = ours.get("metadata") or {}, body.get("metadata") or {}
        return bool(meta.get("resourceVersion")) and (meta.get("resourceVersion"), meta.get("uid")) == (
            seen.get("resourceVersion"),
            seen.get("uid"),
        )


def _written(memo: Any) -> Written:
    found = memo.get("written")
    if found is None:
        found = memo["written"] = Written()
    assert isinstance(found, Written)
    return found


Key = tuple[str, str]
_Logger = logging.Logger | logging.LoggerAdapter[Any]


class Looks:
    """This process's canaries: the newest watched body of each, and the scheduler of their looks.

    Made once per operator start (``startup.configure``) and kept in kopf's memo, which every
    canary's own memo shares (kopf copies it shallowly), with the shared ``written`` and ``released``.
    """

    def __init__(self, memo: Any, workers: int) -> None:
        self._memo = memo
        self._bodies: dict[Key, dict[str, Any]] = {}
        self._loggers: dict[Key, _Logger] = {}
        self._lock = threading.Lock()
        _written(memo)
        _released(memo)
        self.scheduler: scheduling.Scheduler[Key] = scheduling.Scheduler(
            self.look, workers=workers, retry_seconds=TIMER_SECONDS
        )

    def seen(self, key: Key, body: Mapping[str, Any]) -> None:
        """A watch event: keep the body; look at once unless it is our own write coming back."""
        raw = _lean(body)
        with self._lock:
            self._bodies[key] = raw
        if not _written(self._memo).mine(key, raw):
            self.scheduler.wake(key)

    def own(self, key: Key, body: Mapping[str, Any], logger: _Logger) -> None:
        with self._lock:
            self._bodies.setdefault(key, _lean(body))
            self._loggers[key] = logger
        self.scheduler.add(key)

    def disown(self, key: Key) -> None:
        self.scheduler.forget(key)
        with self._lock:
            self._loggers.pop(key, None)

    def drop(self, key: Key) -> None:
        self.disown(key)
        with self._lock:
            self._bodies.pop(key, None)

    def look(self, key: Key) -> float | None:
        """One look at ``key`` (a scheduler worker calls it); seconds until the next one it wants."""
        with self._lock:
            body = self._bodies.get(key)
            logger = self._loggers.get(key, log)
        if body is None:
            return None
        uid = (body.get("metadata") or {}).get("uid")
        result = tick(name=key[1], namespace=key[0], memo=self._memo, logger=logger, body=body, uid=uid)
        if result is None or result.next_at is None:
            return None
        delay = (result.next_at - _deps(self._memo).clock()).total_seconds()
        if result.action is reconcile.TickAction.IDLE:
            # A look that found nothing due never asks for another at once (no spinning on a due
            # time the tick's whole-second clock has not reached yet).
            delay = max(delay, IDLE_MIN_SECONDS)
        return delay


def _looks(memo: Any) -> Looks | None:
    found = memo.get("looks")
    return found if isinstance(found, Looks) else None


@kopf.index(canaries.GROUP, canaries.VERSION, canaries.PLURAL, id="claimants")
async def claimants(body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, claims.Claimant]:
    """Every canary of the watched namespaces, for the start rule (reconcile._claimed_by_another).

    No shard filter: a canary of another shard may hold a Deployment that one of ours needs. kopf
    fills the index from its first listing before it runs any handler, so no look reads it half
    full; a deleted canary leaves it."""
    return {namespace or "": claims.claimant(body)}


# A snapshot retried when the event loop changed the index during the copy (a RuntimeError).
_SNAPSHOT_ATTEMPTS = 3


def claimants_in(index: Mapping[str, Any], namespace: str) -> list[claims.Claimant] | None:
    """The claimants of ``namespace`` in kopf's index, read from a look's thread; None: read none.

    kopf updates the index on its event loop while looks read it on theirs: ``list()`` of a store
    copies its dict's values in one call, which fails (never returns a torn copy) if the loop
    changed the dict's size in between."""
    for _ in range(_SNAPSHOT_ATTEMPTS):
        try:
            store = index.get(namespace)
            return [] if store is None else [c for c in list(store) if isinstance(c, claims.Claimant)]
        except RuntimeError:
            continue
    return None


@kopf.on.event(canaries.GROUP, canaries.VERSION, canaries.PLURAL, id="seen", labels=LABELS or None)
async def seen(
    *, event: Mapping[str, Any], body: kopf.Body, name: str, namespace: str | None, memo: Any, **_: Any
) -> None:
    """Every watch event of a canary: keep its body and wake it (no work on kopf's event loop)."""
    looks = _looks(memo)
    if looks is None:
        return
    key = (namespace or "", name)
    if event.get("type") == "DELETED":
        looks.drop(key)
    else:
        looks.seen(key, body)


@kopf.daemon(
    canaries.GROUP,
    canaries.VERSION,
    canaries.PLURAL,
    id="tick",
    when=_live,
    labels=LABELS or None,
)
async def owned(
    *,
    stopped: kopf.DaemonStopped,
    body: kopf.Body,
    name: str,
    namespace: str | None,
    memo: Any,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """While kopf runs this (live canary, active replica, our shard), the scheduler owns the canary."""
    looks = _looks(memo)
    if looks is None:
        return
    key = (namespace or "", name)
    looks.own(key, body, logger)
    try:
        await stopped.wait()
    finally:
        looks.disown(key)


def tick(
    name: str,
    namespace: str | None,
    memo: Any,
    logger: _Logger,
    *,
    body: Mapping[str, Any] | None = None,
    uid: str | None = None,
    **_: Any,
) -> reconcile.TickResult | None:
    """One look at one canary: the newest body (or a fresh read), one reconcile tick, its notes logged.

    None when there was nothing to look at (deleted, being deleted, or released by this operator).
    """
    deps = _deps(memo)
    key = (namespace or "", name)
    written = _written(memo)
    lock_id = uid or f"{namespace}/{name}"
    with canary_lock(lock_id):
        if _was_released(memo, lock_id):
            return None
        current = written.newest(key, body) if body is not None else None
        if current is None:
            current = canaries.get(deps.api, namespace or "", name)
        if current is None or (current.get("metadata") or {}).get("deletionTimestamp"):
            return None
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
        logger.debug("status changed under the look; redoing it at once")
    return result


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
    looks = _looks(memo)
    if looks is not None:
        looks.drop((str(meta.get("namespace", "")), str(meta.get("name", ""))))
    with canary_lock(uid):  # waits for a look in flight; later looks see the release
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
