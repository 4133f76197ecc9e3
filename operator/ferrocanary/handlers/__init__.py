"""Thin kopf handlers: parse, call reconcile, return status. The only kopf importers.

``kopf run -m ferrocanary.handlers`` (or ``kopf.testing.KopfRunner``) registers them on import;
``ferrocanary run`` calls :func:`run`, which starts the same operator in this process.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Sequence

import kopf

from ferrocanary.handlers import canary, peers, startup

__all__ = ["canary", "peers", "run", "startup"]

# CPython's cyclic collector, tuned for an operator whose heap holds every canary's watched object and
# fetched blocks (hundreds of MiB at 1,000 canaries). With the default thresholds (700, 10, 10), each
# look's decoded answer (thousands of small lists and dicts) set off young collections that kept
# rescanning the answers of the other looks in flight: in a profile at 1,000 canaries, a fifth of
# the operator's CPU sat in decoding Prometheus' JSON, which takes about 1 ms alone. Collecting the
# youngest generation every 50,000 allocations instead cut a decode beside such a heap from 5.0 ms
# to 1.1 ms (the same answer, a million long-lived objects, 50 answers alive at once).
GC_THRESHOLDS = (50_000, 20, 20)


def tune_collector() -> None:
    """Everything imported so far (kopf, the Kubernetes client, scipy) never becomes garbage: move it
    out of the collector's sight, then collect the young generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run(
    *,
    namespaces: Sequence[str] = (),
    metrics_port: int | None = None,
    metrics_address: str | None = None,
    peering: str | None = None,
    priority: int | None = None,
    verbose: bool = False,
) -> int:
    """Run the operator until interrupted: the given namespaces, or every namespace when none.

    ``peering`` names a kopf peering object (its CRDs installed, e.g. by the Helm chart) so that of
    several replicas only one acts at a time (the one with the highest ``priority``); without it
    the operator runs standalone. Without a ``priority`` each replica gets its own from its start
    time (see peers.py): equal priorities would make kopf pause every replica.
    """
    if metrics_port is not None:
        os.environ["FERROCANARY_METRICS_PORT"] = str(metrics_port)
    if metrics_address is not None:
        os.environ["FERROCANARY_METRICS_ADDRESS"] = metrics_address
    if peering is not None:
        # kopf names this process in the peering object by POD_ID: the pod name reads better there.
        os.environ.setdefault("POD_ID", peers.identity(os.environ))
        if priority is None:
            priority = peers.priority_now(os.environ)
    kopf.configure(verbose=verbose)
    tune_collector()
    kopf.run(
        standalone=peering is None,
        peering_name=peering,
        priority=priority,
        clusterwide=not namespaces,
        namespaces=list(namespaces),
    )
    return 0
