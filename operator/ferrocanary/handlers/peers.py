"""Which of several operator replicas acts: distinct kopf peering priorities, oldest replica first.

kopf peering pauses every operator that sees a live peer with a higher priority, and pauses *all*
of them when two live peers share the highest one. Replicas of one Deployment therefore need
distinct priorities, and a replica that starts later must not preempt one that is already working
(a rolling update would hand the canaries over on every new pod). ``auto_priority`` gives each
process a priority that falls with its start time (older is higher), with a hash of its identity
(the pod name) to break ties inside the same second (a million buckets: two replicas started in
the same second share a priority once in a million, and then kopf pauses both until one restarts).

Failover: a replica killed without a goodbye (SIGKILL, a lost node) stays in the peering object
until its keep-alive expires, ``FERROCANARY_PEERING_LIFETIME`` seconds (default 15) after its last
one; the standby then resumes, relists the RustCanaries and ticks them from their ``.status``. A
replica that exits cleanly removes itself and the standby resumes at once.
"""

from __future__ import annotations

import os
import socket
import time
import zlib
from collections.abc import Mapping

# Keep-alive lifetime in seconds. kopf refreshes it every lifetime - (5..10) s, so below ~12 s a
# slow apiserver could let a live replica look dead for a moment and two would act.
DEFAULT_LIFETIME = 15
MIN_LIFETIME = 12
# Ties within one second are broken by this many identity buckets.
_TIE_BUCKETS = 1_000_000


def identity(env: Mapping[str, str]) -> str:
    """This replica's name among its peers: the pod name (the chart sets POD_NAME), else host and pid."""
    return env.get("POD_NAME") or f"{socket.gethostname()}@{os.getpid()}"


def auto_priority(started_s: int, name: str) -> int:
    """A priority that is higher for an earlier start; two names started in one second tie once in a million.

    Negative and below 2**53 in magnitude, so it survives JSON in the peering object's status.
    """
    return -(started_s * _TIE_BUCKETS) - (zlib.crc32(name.encode()) % _TIE_BUCKETS)


def priority_now(env: Mapping[str, str]) -> int:
    return auto_priority(int(time.time()), identity(env))


def lifetime(env: Mapping[str, str]) -> int:
    """The keep-alive lifetime from ``FERROCANARY_PEERING_LIFETIME``; a clear error if it is unusable."""
    raw = env.get("FERROCANARY_PEERING_LIFETIME", "").strip()
    if not raw:
        return DEFAULT_LIFETIME
    try:
        seconds = int(raw)
    except ValueError:
        raise ValueError(f"FERROCANARY_PEERING_LIFETIME: {raw!r} is not a whole number of seconds") from None
    if seconds < MIN_LIFETIME:
        raise ValueError(f"FERROCANARY_PEERING_LIFETIME: {seconds} is below {MIN_LIFETIME} seconds")
    return seconds
