"""Operator start-up: kopf settings for RustCanaries, the shared reconcile dependencies, /metrics.

Settings: our own finalizer and annotation prefix (nothing under status, which belongs to the
RustCanary schema), and only warnings posted as Events by kopf itself (ferrocanary posts its own).
Environment (so ``kopf run -m ferrocanary.handlers`` and ``ferrocanary run`` behave the same):
``FERROCANARY_METRICS_PORT`` (0 or unset: no /metrics), ``FERROCANARY_METRICS_ADDRESS``
(default 0.0.0.0, for a pod), ``FERROCANARY_TIMER_SECONDS`` (see canary.py),
``FERROCANARY_PROMETHEUS_TOKEN_ADDRESSES`` (comma-separated Prometheus addresses that may receive a
bearer token; set but empty: none; unset: any) and ``FERROCANARY_PROMETHEUS_ALLOW_INSECURE_TLS``
(``false`` refuses ``insecureSkipVerify``; unset: allowed). The chart sets both.
``FERROCANARY_PEERING_LIFETIME``: seconds a silent peer counts as alive (peers.py; default 15).
Scale: ``FERROCANARY_WORKERS`` (default 32) threads run ticks, so canaries waiting on a slow
Prometheus (at most ``FERROCANARY_PROMETHEUS_CONCURRENCY`` per address, see metrics/transport.py)
leave the rest free; ``FERROCANARY_API_QPS``/``FERROCANARY_API_BURST`` limit our own apiserver calls
(kube/rest.py); ``FERROCANARY_SHARD_SELECTOR`` restricts this installation to matching canaries.
``FERROCANARY_SHARED_TEMPLATES_NAMESPACE``: the namespace whose MetricTemplates any RustCanary may
reference (``templateRef.namespace``; unset: only a canary's own namespace).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import kopf

from ferrocanary import reconcile
from ferrocanary.handlers import canary, peers
from ferrocanary.kube import client
from ferrocanary.metrics import exposition, prometheus

PREFIX = "ferrocanary.io"
WORKERS = 32  # look threads unless FERROCANARY_WORKERS says otherwise (see configure)
_serving: set[tuple[str, int]] = set()


class QuietTicks(logging.Filter):
    """Drop kopf's "Timer 'tick' succeeded." line: it would repeat every few seconds per canary.

    The tick logs what it did itself (transitions and holds), so nothing is lost.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timer 'tick' succeeded")


def token_policy(env: Mapping[str, str]) -> prometheus.TokenPolicy:
    """The platform's Prometheus policy from the operator's environment (see the module docstring)."""
    listed = env.get("FERROCANARY_PROMETHEUS_TOKEN_ADDRESSES")
    addresses = None if listed is None else tuple(a.strip() for a in listed.split(",") if a.strip())
    insecure = env.get("FERROCANARY_PROMETHEUS_ALLOW_INSECURE_TLS", "true").strip().lower()
    return prometheus.TokenPolicy(addresses, allow_insecure_tls=insecure in ("1", "true", "yes"))


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf's API credentials from the same place as the operator's own calls ($KUBECONFIG read now)."""
    found = client.credentials()
    return kopf.ConnectionInfo(
        server=found.server,
        ca_path=found.ca_path,
        insecure=found.insecure,
        certificate_path=found.certificate_path,
        private_key_path=found.private_key_path,
        scheme=found.scheme,
        token=found.token,
    )


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: Any, logger: kopf.Logger, **kwargs: Any) -> None:
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.peering.lifetime = peers.lifetime(os.environ)
    # Enough look threads that the looks one slow Prometheus ties up (its fetch slots and as many
    # waiters: 16 at the default 8 slots) leave as many free for every other canary. Waiting threads
    # cost no CPU; kopf's own handlers use the same number from its pool.
    settings.execution.max_workers = int(os.environ.get("FERROCANARY_WORKERS", "") or WORKERS)
    quiet = QuietTicks()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, QuietTicks) for f in handler.filters):
            handler.addFilter(quiet)
    # kopf passes every index by its id (canary.claimants); without it each start LISTs its namespace.
    index: Mapping[str, Any] | None = kwargs.get("claimants")
    memo["deps"] = reconcile.Deps(
        api=client.connect(),
        token_policy=token_policy(os.environ),
        shared_templates_namespace=os.environ.get("FERROCANARY_SHARED_TEMPLATES_NAMESPACE", ""),
        claimants=None if index is None else lambda namespace: canary.claimants_in(index, namespace),
    )
    # The looks run on our own threads, served from one queue of due times (canary.Looks), not on
    # kopf's pool: kopf's handlers (watch events, deletion) only queue and release.
    looks = memo["looks"] = canary.Looks(memo, workers=settings.execution.max_workers or WORKERS)
    looks.scheduler.start()
    port = int(os.environ.get("FERROCANARY_METRICS_PORT", "0") or 0)
    address = os.environ.get("FERROCANARY_METRICS_ADDRESS", "0.0.0.0")
    if port > 0 and (address, port) not in _serving:  # one server per process, also across restarts in tests
        exposition.serve(port, address)
        _serving.add((address, port))
        logger.info("serving /metrics on %s:%d", address, port)


@kopf.on.cleanup()
def stop_looks(memo: Any, **_: Any) -> None:
    """The operator is stopping: finish the looks in flight and start no more."""
    looks = memo.get("looks")
    if isinstance(looks, canary.Looks):
        looks.scheduler.stop()
