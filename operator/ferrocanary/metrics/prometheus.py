"""The Prometheus source: one ``query_range`` per signal and arm, step = the analysis interval.

The value of ``increase(x[I])`` evaluated at ``t`` covers (t - I, t], so block k (starting at
``start + k*I``) is read at ``start + (k+1)*I``. Latency arrives as cumulative counts by ``le``; they
are made monotone (a bucket never holds fewer than the one below it, whatever extrapolation did) and
differenced into per-bucket counts. A signal with no series at a block is listed in the block's
``missing`` (the judge then continues or holds, never promotes); errors, panics and kube-state-metrics
faults with no series count as zero, because those series legitimately appear only when something
happens or when kube-state-metrics is not installed. Any transport or API error aborts the whole fetch
with MetricsUnavailableError; the bearer token is sent in a header and appears in no message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from ferrocanary.kube import resources, rest
from ferrocanary.metrics import protocol, queries
from ferrocanary.model import analysis, recording

Series = Mapping[str, Any]


def _le(value: str) -> float:
    return math.inf if value in ("+Inf", "Inf", "inf") else float(value)


class PrometheusSource:
    """``MetricsSource`` over the Prometheus HTTP API (prometheus-api-client)."""

    def __init__(
        self,
        address: str,
        *,
        token: str | None = None,
        timeout_seconds: float = 10.0,
        verify_tls: bool = True,
    ) -> None:
        self.address = address.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else None
        # One quick retry only: a tick must report "Prometheus down" within seconds, not minutes.
        retry = Retry(total=1, backoff_factor=0.2, status_forcelist=(502, 503, 504))
        self._client = PrometheusConnect(
            url=self.address,
            headers=headers,
            disable_ssl=not verify_tls,
            retry=retry,
            timeout=timeout_seconds,
        )

    def __repr__(self) -> str:  # never show the headers (the token)
        return f"PrometheusSource({self.address!r})"

    def _range(self, query: str, window: protocol.Window, count: int) -> list[Series]:
        step = timedelta(seconds=window.interval_seconds)
        first_end = window.start + step
        last_end = window.start + count * step
        try:
            result = self._client.custom_query_range(
                query, start_time=first_end, end_time=last_end, step=f"{window.interval_seconds:g}s"
            )
        except PrometheusApiClientException as exc:
            raise protocol.MetricsUnavailableError(
                f"Prometheus at {self.address} refused a query: {str(exc)[:300]}"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise protocol.MetricsUnavailableError(
                f"Prometheus at {self.address} unreachable: {type(exc).__name__}"
            ) from None
        return list(result or [])

    def _index(self, timestamp: float, window: protocol.Window, count: int) -> int | None:
        k = round((timestamp - window.start.timestamp()) / window.interval_seconds) - 1
        return k if 0 <= k < count else None

    def _scalar(self, query: str, window: protocol.Window, count: int) -> dict[int, float]:
        values: dict[int, float] = {}
        for series in self._range(query, window, count):
            for timestamp, text in series.get("values", []):
                k = self._index(float(timestamp), window, count)
                number = float(text)
                if k is not None and math.isfinite(number):
                    values[k] = values.get(k, 0.0) + number
        return values

    def _histogram(self, query: str, window: protocol.Window, count: int) -> dict[int, dict[float, float]]:
        values: dict[int, dict[float, float]] = {}
        for series in self._range(query, window, count):
            le = _le(str(series.get("metric", {}).get("le", "")))
            for timestamp, text in series.get("values", []):
                k = self._index(float(timestamp), window, count)
                number = float(text)
                if k is not None and math.isfinite(number):
                    values.setdefault(k, {})[le] = number
        return values

    def fetch(self, window: protocol.Window) -> recording.Recording:
        starts = window.block_starts()
        count = len(starts)
        if count == 0:
            return recording.Recording(window.interval_seconds, (), ())
        rng = queries.range_of(window.interval_seconds)
        arms: dict[str, dict[str, Any]] = {}
        for arm in queries.ARMS:
            sel = window.selectors.baseline if arm == "baseline" else window.selectors.candidate
            pod_sel = window.selectors.baseline_pods if arm == "baseline" else window.selectors.candidate_pods
            arms[arm] = {
                "requests": self._scalar(queries.requests(sel, rng), window, count),
                "errors": self._scalar(queries.errors(sel, rng), window, count),
                "latency": self._histogram(queries.latency_buckets(sel, rng), window, count),
                "cpu": self._scalar(queries.cpu_seconds(sel, rng), window, count),
                "memory": self._scalar(queries.memory_bytes(sel, rng), window, count),
                "pods": self._scalar(queries.pods(sel, rng), window, count),
                "panics": self._scalar(queries.panics(sel, rng), window, count),
                "container_faults": self._scalar(queries.container_faults(pod_sel, rng), window, count),
            }
        bounds = sorted(
            {le for arm in arms.values() for block in arm["latency"].values() for le in block} - {math.inf}
        )
        blocks = tuple(_block(k, start, window, arms, tuple(bounds)) for k, start in enumerate(starts))
        return recording.Recording(window.interval_seconds, tuple(bounds), blocks)


def per_bucket(cumulative: Mapping[float, float], bounds: Sequence[float]) -> tuple[float, ...]:
    """Per-bucket counts (last = +Inf) from cumulative counts by ``le``, made monotone first.

    A bound absent from ``cumulative`` holds what the bucket below held (no observations in it).
    """
    running = 0.0
    monotone: list[float] = []
    for le in [*bounds, math.inf]:
        running = max(running, cumulative.get(le, running), 0.0)
        monotone.append(running)
    return tuple(b - a for a, b in zip([0.0, *monotone[:-1]], monotone, strict=True))


def _block(
    k: int,
    start: datetime,
    window: protocol.Window,
    arms: Mapping[str, Mapping[str, Any]],
    bounds: tuple[float, ...],
) -> recording.Block:
    missing: set[str] = set()
    built: dict[str, recording.ArmBlock] = {}
    for arm, signals in arms.items():

        def value(name: str, *, optional: bool = False, signals: Mapping[str, Any] = signals) -> float:
            found = signals[name].get(k)
            if found is None:
                if not optional:
                    missing.add(name)
                return 0.0
            return max(float(found), 0.0)

        cumulative = signals["latency"].get(k)
        if not cumulative:
            missing.add("latency")
        built[arm] = recording.ArmBlock(
            requests=value("requests"),
            errors=value("errors", optional=True),
            latency_counts=per_bucket(cumulative or {}, bounds),
            cpu_seconds=value("cpu"),
            memory_bytes=value("memory"),
            pods=value("pods"),
            faults=value("panics", optional=True) + value("container_faults", optional=True),
        )
    ordered = tuple(name for name in recording.SIGNALS if name in missing)
    return recording.Block(
        start=start.astimezone(UTC),
        weight=float(window.block_weight(start)),
        baseline=built["baseline"],
        candidate=built["candidate"],
        missing=ordered,
    )


def from_spec(api: rest.JsonApi, namespace: str, analysis_spec: Mapping[str, Any]) -> PrometheusSource:
    """The source ``spec.analysis.prometheus`` describes; the token is read from its Secret each time."""
    prom = analysis_spec.get("prometheus") or {}
    address = prom.get("address")
    if not isinstance(address, str) or not address:
        raise protocol.MetricsUnavailableError("spec.analysis.prometheus.address is required")
    token = None
    ref = prom.get("secretRef")
    if ref:
        secret, key = str(ref.get("name", "")), str(ref.get("key", "token"))
        try:
            token = resources.read_secret(api, namespace, secret, key)
        except (rest.KubeError, KeyError, ValueError) as exc:
            # The exception text names the Secret and key, never the value.
            raise protocol.MetricsUnavailableError(
                f"cannot read the Prometheus token from Secret {namespace}/{secret} key {key}: "
                f"{type(exc).__name__}"
            ) from None
    timeout = analysis.parse_duration(prom.get("timeout", "10s"), "spec.analysis.prometheus.timeout")
    return PrometheusSource(
        address, token=token, timeout_seconds=timeout, verify_tls=not bool(prom.get("insecureSkipVerify"))
    )
