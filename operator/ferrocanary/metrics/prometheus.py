"""The Prometheus source: one ``query_range`` per look for all signals of both arms, step = the interval.

Counters (requests, errors, latency buckets, CPU seconds, panics) are read raw at the block
boundaries ``start + k*I`` and differenced per series, resetting like ``increase()`` does but without
its extrapolation: extrapolation scales each arm's count by how its scrapes happened to fall in the
window, which is noise the judge's sample-ratio check would read as a broken traffic split. A series
that first appears at boundary k started from zero (a new pod). Latency per-bucket counts come from
the cumulative ``le`` buckets, made monotone and differenced. Memory is the block's mean
(``avg_over_time``), pods the series seen, kube-state-metrics faults an ``increase()`` of restarts
with an OOMKilled/139/134 termination (rare events: extrapolation does not matter there).

A signal with no series at a block is listed in the block's ``missing`` (the judge continues or
holds, never promotes); errors, panics and kube-state-metrics faults with no series count as zero,
because those series appear only when something happens or when kube-state-metrics is installed.
While Prometheus itself is down, boundaries repeat the last sample (its 5-minute lookback), so those
blocks count no requests and the judge skips them; the first block after it is back holds what was
missed. Any transport or API error, and any answer that cannot be read (no ``data``, a value that
is not a number), aborts the whole fetch with MetricsUnavailableError, so the canary holds with a
reason instead of the tick crashing. Messages are ours: the address without credentials and the
HTTP status, never the answer's text (a tenant must not read arbitrary URLs back through status)
nor the bearer token, which is sent in a header only.

Each look fetches only the blocks completed since the last one (``blockstore``: the rest are kept in
memory, rebuilt from Prometheus after a restart) with one request for every signal of both arms
(each arm's and signal's query tagged by ``label_replace`` and joined with ``or``), and counters are
summed per process in PromQL
(``sum by (le, pod, instance)``), so an answer has one series per pod and bucket rather than per
pod, route, method and bucket while a counter reset (a restarted process) still shows as one. How
each request is bounded (one deadline per fetch, answer size, ``Retry-After``, concurrency per
address) is ``transport``'s. A look that fetches new blocks also reads OpenCost's node prices for
each arm's pods at the newest block's end (``opencost``), as more parts of the same request (the
static prices apply where its series are absent).
"""

from __future__ import annotations

import logging
import math
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from ferrocanary.kube import resources, rest
from ferrocanary.metrics import blockstore, custom, opencost, promclock, protocol, queries, transport
from ferrocanary.model import recording
from ferrocanary.model import spec as canary_spec

log = logging.getLogger(__name__)

Series = Mapping[str, Any]


def _le(value: str) -> float:
    return math.inf if value in ("+Inf", "Inf", "inf") else float(value)


# Counters are summed over everything but the process that counts them (and the bucket): a reset
# is per process, so differencing per-process sums reads resets and new pods exactly as per series.
_PER_PROCESS = "le, namespace, pod, instance, job"
# The label that tells apart, in the one answer of a look, which arm and signal a series belongs to
# (added by label_replace, as "<arm>.<signal>").
_PART = "ferrocanary_part"
# The signal name of OpenCost's prices in a look's one request ("price.cpu", "price.memory").
_PRICE = "price."
# Each signal's query in an arm's resolved queries (the preset's, the templates', or the contract's).
_COUNTERS: tuple[tuple[str, Callable[[queries.ArmQueries], str | None]], ...] = (
    ("requests", lambda q: q.requests),
    ("errors", lambda q: q.errors),
    ("latency", lambda q: q.latency_buckets),
    ("cpu", lambda q: q.cpu),
    ("panics", lambda q: q.panics),
)
_GAUGES: tuple[tuple[str, Callable[[queries.ArmQueries], str]], ...] = (
    ("memory", lambda q: q.memory),
    ("pods", lambda q: q.pods),
    ("container_faults", lambda q: q.container_faults),
)


class PrometheusSource:
    """``MetricsSource`` over the Prometheus HTTP API, fetching each block once (see the module doc)."""

    def __init__(
        self,
        address: str,
        *,
        token: str | None = None,
        timeout_seconds: float = 10.0,
        verify_tls: bool = True,
        store: blockstore.BlockStore | None = None,
        owner: blockstore.Owner = ("", ""),
    ) -> None:
        self.address = address.rstrip("/")
        self._where = _without_credentials(self.address)
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self._client = transport.RangeClient(
            self.address, self._where, headers=headers, verify_tls=verify_tls, timeout=timeout_seconds
        )
        # Without a shared store (a one-off fetch, a test) every fetch starts from the first block.
        self._store = store
        self._owner = owner

    def __repr__(self) -> str:  # never show the headers (the token)
        return f"PrometheusSource({self._where!r})"

    def _query(self, query: str, window: protocol.Window, first: datetime, last: datetime) -> list[Series]:
        result: Any = self._client.custom_query_range(
            query, start_time=first, end_time=last, step=f"{window.interval_seconds:g}s"
        )
        if not isinstance(result, list):
            raise protocol.MetricsUnavailableError(f"Prometheus at {self._where} answered without a result")
        return list(result)

    def _points(self, series: Series, window: protocol.Window) -> dict[int, float]:
        """Values by boundary index k (time ``start + k*I``), finite ones only."""
        points: dict[int, float] = {}
        for timestamp, text in series.get("values", []):
            number = float(text)
            if math.isfinite(number):
                points[round((float(timestamp) - window.start.timestamp()) / window.interval_seconds)] = (
                    number
                )
        return points

    def _together(
        self, parts: Mapping[blockstore.Signal, str], window: protocol.Window, first: datetime, last: datetime
    ) -> dict[blockstore.Signal, list[Series]]:
        """One request for every (arm, signal) query: each tagged with its part, joined with ``or``.

        One request instead of one per signal because a look's cost at Prometheus was mostly per
        request, not per series: on the 1,000-canary bench, a canary's 8 requests took 0.55 s (median
        of 25) and the same queries as one 0.28 s, for the same 294 series."""
        # Prometheus evaluates ``a or b or c ...`` from the left, and each ``or`` handles again every
        # series on its left at every step: the latency histograms (about 140 series an arm, nine in
        # ten of a look's series) go last, so only the last two ``or``s carry them. Side by side on the
        # 1,000-canary bench's Prometheus, a look's 294-series query took 17 ms instead of 23 (median
        # of 15 each, interleaved).
        ordered = sorted(parts, key=lambda key: key[1] == "latency")
        tags = {f"{arm}.{signal}": (arm, signal) for arm, signal in ordered}
        joined = " or ".join(
            f'label_replace({parts[key]}, "{_PART}", "{tag}", "", "")' for tag, key in tags.items()
        )
        split: dict[blockstore.Signal, list[Series]] = {key: [] for key in parts}
        for series in self._query(joined, window, first, last):
            key = tags.get(str(series.get("metric", {}).get(_PART, "")))
            if key is None:
                raise ValueError("a series without the signal it was asked for")
            split[key].append(series)
        return split

    def _counter(
        self,
        answer: list[Series],
        window: protocol.Window,
        span: tuple[int, int],
        last_seen: dict[blockstore.SeriesKey, float],
    ) -> dict[int, dict[str, float]]:
        """Blocks ``first..count-1``: the increase of each ``le`` (or "" without one), summed over series.

        ``last_seen`` holds each series' latest value at a boundary up to ``first`` (from earlier
        fetches) and is brought up to ``count``.
        """
        first, count = span
        result: dict[int, dict[str, float]] = {}
        for series in answer:
            labels = series.get("metric", {})
            key = blockstore.series_key(labels)
            le = str(labels.get("le", ""))
            points = self._points(series, window)
            last = last_seen.get(key)  # the latest value seen at an earlier boundary
            for k in range(first, count):
                if k in points:
                    last = points[k]
                if k + 1 not in points:
                    continue
                after = points[k + 1]
                # Never seen before: a new series (pod) counting from zero. Lower than before: a reset.
                # Seen before but not at k (a gap longer than Prometheus's lookback): all since then.
                increase = after if last is None or after < last else after - last
                block = result.setdefault(k, {})
                block[le] = block.get(le, 0.0) + increase
            if count in points:
                last = points[count]
            if last is not None:
                last_seen[key] = last
        return result

    def _gauge(
        self, answer: list[Series], window: protocol.Window, span: tuple[int, int]
    ) -> dict[int, float]:
        """A ``..._over_time`` aggregate read at the end of blocks ``first..count-1``."""
        first, count = span
        values: dict[int, float] = {}
        for series in answer:
            for k, number in self._points(series, window).items():
                if first + 1 <= k <= count:
                    values[k - 1] = values.get(k - 1, 0.0) + number
        return values

    def fetch(self, window: protocol.Window) -> recording.Recording:
        behind = promclock.behind(self.address)
        if behind:  # Prometheus' clock is behind ours: end where its ``lag`` ends, not ours (promclock)
            window = replace(window, end=window.end - timedelta(seconds=behind))
        try:
            return self._fetch(window)
        except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as exc:
            # A malformed answer (a proxy's page, a broken exporter's sample): hold, never crash the tick.
            # The traceback goes to the operator's log only (it may quote the answer).
            log.warning("unreadable answer from Prometheus at %s", self._where, exc_info=True)
            raise protocol.MetricsUnavailableError(
                f"Prometheus at {self._where} sent an answer that could not be read ({type(exc).__name__})"
            ) from None

    def _entry(self, window: protocol.Window) -> blockstore.Entry:
        if self._store is None:
            return blockstore.Entry()
        # The resolved queries are part of the key: a changed template or preset fetches afresh.
        resolved = tuple((arm, window.arm_queries(arm)) for arm in queries.ARMS)
        key = (self.address, window.start, window.interval_seconds, window.selectors, resolved)
        return self._store.entry(key, self._owner)

    def _fetch_new(
        self, window: protocol.Window, first: int, count: int, held: blockstore.Entry
    ) -> blockstore.Entry:
        """Blocks ``first..count-1`` from Prometheus (the store merges them only if all succeeded).

        One request for every signal of both arms and OpenCost's prices, whatever the canary's age.
        It spans the boundaries ``first..count`` the counters are differenced over; the gauges are
        read at the block ends inside it (``_gauge`` drops the value at boundary ``first``), the
        prices at its last point, the newest block's end.
        """
        fresh = blockstore.Entry(count=count)
        step = timedelta(seconds=window.interval_seconds)
        boundaries = (window.start + first * step, window.start + count * step)
        parts: dict[blockstore.Signal, str] = {}
        for arm in queries.ARMS:
            resolved = window.arm_queries(arm)
            for name, pick in _COUNTERS:
                query = pick(resolved)
                if query is not None:  # no such counter in this preset (panics outside the contract)
                    parts[(arm, name)] = f"sum by ({_PER_PROCESS}) ({query})"
            for name, pick_gauge in _GAUGES:
                parts[(arm, name)] = pick_gauge(resolved)
        selectors = window.selectors
        pods = {"baseline": selectors.baseline_pods, "candidate": selectors.candidate_pods}
        prices = {
            (arm, query): (arm, f"{_PRICE}{signal}")
            for signal, by_arm in opencost.arm_queries(pods).items()
            for arm, query in by_arm.items()
        }
        parts.update({key: query for (_, query), key in prices.items()})
        gauges = {name for name, _ in _GAUGES}
        answers = self._together(parts, window, *boundaries)
        for (arm, name), answer in answers.items():
            if name.startswith(_PRICE):
                continue
            if name in gauges:
                fresh.gauges[(arm, name)] = self._gauge(answer, window, (first, count))
                continue
            last_seen = dict(held.last.get((arm, name), {}))
            fresh.counters[(arm, name)] = self._counter(answer, window, (first, count), last_seen)
            fresh.last[(arm, name)] = last_seen

        def price(asked: Mapping[str, str]) -> dict[str, float | None]:
            return {arm: _last(answers[prices[(arm, query)]]) for arm, query in asked.items()}

        fresh.prices = opencost.read(price, pods)
        return fresh

    def _whole_counter(self, window: protocol.Window, count: int) -> custom.Counter:
        """A custom KPI's counter query read over the whole window: increases by block and ``le``."""
        step = timedelta(seconds=window.interval_seconds)

        def read(query: str) -> dict[int, dict[str, float]]:
            answer = self._query(query, window, window.start, window.start + count * step)
            return self._counter(answer, window, (0, count), {})

        return read

    def _fetch(self, window: protocol.Window) -> recording.Recording:
        starts = window.block_starts()
        count = len(starts)
        if count == 0:
            return recording.Recording(window.interval_seconds, (), ())
        held = self._entry(window)
        first = min(held.count, count)
        # Looks waiting for a slot go in the order their first new block became complete.
        due = window.start + (first + 1) * timedelta(seconds=window.interval_seconds)
        self._client.start(due=due.timestamp() + window.lag_seconds)
        if first < count:
            held.merge(self._fetch_new(window, first, count, held))
        # Custom KPIs' counters are read whole at each look (not kept between looks).
        own_counter = self._whole_counter(window, count)

        def total(signal: blockstore.Signal) -> dict[int, float]:
            return {k: sum(v.values()) for k, v in held.blocks(signal, count).items()}

        arms: dict[str, dict[str, Any]] = {}
        for arm in queries.ARMS:
            q = window.arm_queries(arm)  # the preset's or the templates' queries (spec.analysis.metrics)
            unit = q.latency_unit_seconds  # le in seconds, whatever unit the histogram counts in
            latency = held.blocks((arm, "latency"), count)
            arms[arm] = {
                "requests": total((arm, "requests")),
                "errors": total((arm, "errors")),
                "latency": {k: {_le(le) * unit: n for le, n in v.items()} for k, v in latency.items()},
                "cpu": total((arm, "cpu")),
                "memory": held.gauges.get((arm, "memory"), {}),
                "pods": held.gauges.get((arm, "pods"), {}),
                "panics": total((arm, "panics")) if q.panics else {},
                "container_faults": held.gauges.get((arm, "container_faults"), {}),
            }
        bounds = sorted(
            {le for arm in arms.values() for block in arm["latency"].values() for le in block} - {math.inf}
        )
        blocks = tuple(_block(k, start, window, arms, tuple(bounds)) for k, start in enumerate(starts))
        own = custom.recordings(window, own_counter, arms, starts, _block)
        return recording.Recording(
            window.interval_seconds, tuple(bounds), blocks, custom=own, prices=held.prices
        )


def _last(series: list[Series]) -> float | None:
    """The newest value of a one-series answer (None: no series)."""
    values = series[0].get("values", []) if series else []
    return float(values[-1][1]) if values else None


def _without_credentials(address: str) -> str:
    """The address as it may appear in status and Events: no ``user:password@``, query or fragment."""
    parts = urllib.parse.urlsplit(address)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None:
        netloc = f"{netloc}:{port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


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


@dataclass(frozen=True)
class TokenPolicy:
    """What the platform allows a RustCanary's Prometheus settings to do (the operator's configuration).

    ``token_addresses``: the only Prometheus addresses (scheme, host and port) a bearer token is sent
    to; None allows any (a developer's own operator), the chart always sets it. ``allow_insecure_tls``:
    whether ``insecureSkipVerify`` is honoured. A spec outside the policy holds with a reason that
    says which setting refused it; its token is never read.
    """

    token_addresses: tuple[str, ...] | None = None
    allow_insecure_tls: bool = True

    def check(self, prom: canary_spec.PrometheusSpec) -> None:
        where = _without_credentials(prom.address)
        if not prom.verify_tls and not self.allow_insecure_tls:
            raise protocol.MetricsNotAllowedError(
                "spec.analysis.prometheus.insecureSkipVerify is not allowed by the platform "
                "(chart value prometheus.allowInsecureTLS)"
            )
        if prom.secret_name is None or self.token_addresses is None:
            return
        if _origin(prom.address) not in {_origin(a) for a in self.token_addresses}:
            allowed = ", ".join(_without_credentials(a) for a in self.token_addresses) or "none"
            raise protocol.MetricsNotAllowedError(
                f"spec.analysis.prometheus.address {where} may not receive the Prometheus token "
                f"(allowed: {allowed}; chart value prometheus.tokenAddresses)"
            )


def _origin(address: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(address.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower().rstrip("."), port or default


def from_spec(
    api: rest.JsonApi,
    namespace: str,
    prom: canary_spec.PrometheusSpec,
    policy: TokenPolicy | None = None,
    *,
    store: blockstore.BlockStore | None = None,
    owner: blockstore.Owner = ("", ""),
) -> PrometheusSource:
    """The source ``spec.analysis.prometheus`` describes; the token is read from its Secret each time,
    and only when the platform's policy allows the address to receive it."""
    if not prom.address:
        raise protocol.MetricsUnavailableError("spec.analysis.prometheus.address is required")
    (policy or TokenPolicy()).check(prom)
    token = None
    if prom.secret_name is not None:
        secret, key = prom.secret_name, prom.secret_key
        try:
            token = resources.read_secret(api, namespace, secret, key)
        except (rest.KubeError, KeyError, ValueError) as exc:
            # The exception text names the Secret and key, never the value.
            raise protocol.MetricsUnavailableError(
                f"spec.analysis.prometheus.secretRef: cannot read the Prometheus token from Secret "
                f"{namespace}/{secret} key {key}: {type(exc).__name__}"
            ) from None
    return PrometheusSource(
        prom.address,
        token=token,
        timeout_seconds=prom.timeout_seconds,
        verify_tls=prom.verify_tls,
        store=store,
        owner=owner,
    )
