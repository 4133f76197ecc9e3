"""``kubectl ferrocanary promote|abort|pause|resume NAME [--wait]``: ask the operator, optionally wait.

The request is the ``ferrocanary.io/action`` annotation; the operator acts on its next tick, records
``status.lastAction`` and clears the annotation, which is what ``--wait`` watches for.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ferrocanary.cli.plugin.cluster import RESOURCE, Cluster, PluginError
from ferrocanary.cli.tables import printable
from ferrocanary.kube import canaries
from ferrocanary.policy.state import TERMINAL, Phase

ACTIONS = ("promote", "abort", "pause", "resume")
_POLL_SECONDS = 0.5


def cmd_action(args: argparse.Namespace, cluster: Cluster) -> int:
    obj = cluster.get(args.name)
    phase = str((obj.get("status") or {}).get("phase", Phase.PENDING.value))
    if phase in {p.value for p in TERMINAL}:
        raise PluginError(
            f'rustcanary "{args.name}" is {phase}: it has ended, there is nothing to {args.command}'
        )
    cluster.annotate(args.name, args.command)
    print(f"{RESOURCE}/{args.name} {args.command} requested ({canaries.ACTION_ANNOTATION}={args.command})")
    if args.wait is None:
        print(
            "the operator acts on its next tick; `kubectl ferrocanary get` shows the outcome", file=sys.stderr
        )
        return 0
    status = _wait_until_handled(cluster, args.name, args.wait)
    if status is None:
        raise PluginError(
            f"the operator has not acted on {args.command} within {args.wait:g}s: is it running? "
            f"(the annotation stays, so it acts when it is back)"
        )
    result = (status.get("lastAction") or {}).get("result", "done")
    print(
        f"{RESOURCE}/{args.name} {args.command}: {printable(result)}; "
        f"phase {printable(status.get('phase', '-'))}"
    )
    return 0


def _wait_until_handled(cluster: Cluster, name: str, seconds: float) -> dict[str, Any] | None:
    """The status once the operator has cleared the annotation; None if it has not within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(_POLL_SECONDS)
        obj = cluster.get(name)
        if canaries.ACTION_ANNOTATION not in (obj["metadata"].get("annotations") or {}):
            status: dict[str, Any] = obj.get("status") or {}
            return status
    return None
