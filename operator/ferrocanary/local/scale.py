"""``ferrocanary bench scale``: many RustCanaries on the sandbox, the real operator process, measured.

What runs: the sandbox (real etcd, kube-apiserver, controllers, kwok nodes, Prometheus); two
Deployments per canary on kwok nodes (their pods are Running but run nothing); one synthetic exporter
process (``bench.synthetic``) that exports every arm's metrics-contract series (140 latency buckets)
under the real pod names, scraped by the sandbox's Prometheus every 5 s; the operator as
``ferrocanary run`` in its own process; and N analysis-only RustCanaries (``trafficRouting.none`` at
50%), half of whose Rust builds clearly win (they should be Promoted) and half clearly regress (they
should be RolledBack).

The Deployments are created first, then the operator is started and the RustCanaries are POSTed a
few at a time, evenly over ``--spread`` seconds (one interval by default), so all N canaries run at
once with their blocks ending through the interval. What is measured, from outside the
operator, from the moment every canary exists: its CPU (``/proc``, sampled every 5 s: mean and p99
in cores) and peak resident memory; the API requests the operator itself sent (its own counter,
``ferrocanary_api_requests_total`` on its /metrics, by verb, resource and code: what
``api_requests_per_second`` reports), and next to them the apiserver's own request counters, for
RustCanaries and Events and in all, from every client (the benchmark's own LISTs subtracted);
Prometheus' own counters of ``query_range`` requests and bytes answered; the judgement lag (for
every block, from the moment Prometheus holds it, its end, to the look that judged it,
``lastTickAt``; its p99 also for the blocks ending in each minute); and the share of canaries
that ended as their data call for.
"""

from __future__ import annotations

import math
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ferrocanary.bench import servers
from ferrocanary.kube import canaries, client, rest
from ferrocanary.local import fleet, processes
from ferrocanary.local.sandbox import Sandbox
from ferrocanary.local.toolchain import repo_root
from ferrocanary.policy.state import TERMINAL  # a StrEnum: the phases' strings are members

SAMPLE_SECONDS = 5.0
POLL_SECONDS = 30.0  # at most; half a block when that is shorter
JOB = "scale"
LAG_SECONDS = 10
PER_NAMESPACE = 100
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Options:
    canaries: int
    minutes: float
    interval_seconds: int = 60
    rps: float = 1000.0  # requests per second per build
    until_done: bool = False  # stop measuring once every canary has ended (at most ``minutes``)
    # Seconds over which the canaries are created, evenly (None: one interval). Canaries that start
    # at different moments have blocks that end at different moments, so their looks spread through
    # each interval; 0 creates them all at once and every canary's block ends in the same seconds.
    spread_seconds: float | None = None

    @property
    def spread(self) -> float:
        return float(self.interval_seconds if self.spread_seconds is None else self.spread_seconds)


@dataclass
class _Run:
    """Processes started and counters read, kept so everything is stopped by pid at the end."""

    sandbox: Sandbox
    options: Options
    progress: Progress
    namespaces: list[str] = field(default_factory=list)
    kinds: dict[tuple[str, str], str] = field(default_factory=dict)
    exporter: subprocess.Popen[bytes] | None = None
    operator: subprocess.Popen[bytes] | None = None
    lists: int = 0


def _quiet(_: str) -> None:
    return


def run(options: Options, sandbox: Sandbox | None = None, progress: Progress = _quiet) -> dict[str, Any]:
    """Run the benchmark and return its figures; on its own sandbox unless one is given (kept up)."""
    own = sandbox is None
    box = sandbox or Sandbox(f"bench-scale-{os.getpid()}")
    if own:
        progress("starting the sandbox")
        box.up(progress)
    state = _Run(box, options, progress)
    try:
        return _measure(state)
    finally:
        for proc in (state.operator, state.exporter):
            if proc is not None:
                servers.stop_process(proc)
        fleet.remove_scrape_job(box, JOB)
        if own:
            box.down()
        else:
            for namespace in state.namespaces:
                box.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _measure(state: _Run) -> dict[str, Any]:
    box, options = state.sandbox, state.options
    # A LIST of 1,000 canaries with their status can take longer than the operator's 15 s on a busy box.
    api = rest.Rest(client.api_client(str(box.kubeconfig)), 60.0, limit=rest.RateLimit(0, 1))
    box.kubectl(
        "apply", "--server-side", "-f", str(repo_root() / "crds" / "rustcanaries.ferrocanary.io.yaml")
    )
    fleet.nodes(box, math.ceil(2 * options.canaries / fleet.PODS_PER_NODE))
    pods = _deployments(state, api)
    port = processes.free_port()
    state.exporter = fleet.start_exporter(box, fleet.arms(pods, state.kinds, options.rps), port, JOB)
    fleet.add_scrape_job(box, port, JOB)
    fleet.wait_for_series(box, len(pods), JOB)
    metrics_port = processes.free_port()
    state.operator = fleet.start_operator(
        box, "scale-operator.log", ("-A", f"--metrics-port={metrics_port}", "--metrics-address=127.0.0.1")
    )
    # Created once the operator runs, as a team's canaries are, but within seconds (POSTed a few at a
    # time): created over 20 minutes, the first canaries decided before the last existed. All N then
    # run at once. (An operator started after 1,000 new canaries exist sends kopf's 1,000 finalizer
    # PATCHes at once, unthrottled, which a loaded apiserver answered with timeouts for minutes.)
    _wait_for_operator(state, metrics_port)
    _create_canaries(state, api)
    state.progress(f"measuring for {options.minutes:g} minutes")
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    api_before, prom_before = _apiserver_requests(box), _prometheus_counters(box)
    own_before, lists_before = _operator_requests(metrics_url), state.lists
    began = time.monotonic()
    figures = _watch(state, api, began)
    elapsed = time.monotonic() - began
    own_after = _operator_requests(metrics_url)
    api_after, prom_after = _apiserver_requests(box), _prometheus_counters(box)
    # The benchmark's own LISTs (one per poll) are not the operator's.
    lists = state.lists - lists_before
    canary_rate = max(0.0, api_after[0] - api_before[0] - lists) / elapsed
    server_rate = max(0.0, api_after[1] - api_before[1] - lists) / elapsed
    own = {call: (count - own_before.get(call, 0.0)) / elapsed for call, count in own_after.items()}
    api_rate = sum(own.values())
    queries = (prom_after[0] - prom_before[0]) / elapsed
    answered = (prom_after[1] - prom_before[1]) / elapsed
    n = options.canaries
    result = {
        "canaries": n,
        "minutes": round(elapsed / 60, 2),
        "interval_seconds": options.interval_seconds,
        "spread_seconds": options.spread,
        "operator_cpu_cores_mean": figures["cpu_mean"],
        "operator_cpu_cores_p99": figures["cpu_p99"],
        "operator_rss_mb_max": figures["rss_max"],
        "api_requests_per_second": round(api_rate, 3),
        "api_requests_per_second_by_call": {c: round(r, 3) for c, r in sorted(own.items()) if r > 0},
        "apiserver_canary_requests_per_second": round(canary_rate, 3),
        "apiserver_requests_per_second": round(server_rate, 3),
        "prometheus_queries_per_second": round(queries, 3),
        "prometheus_bytes_per_second": round(answered, 1),
        "judgement_lag_p99_seconds": figures["lag_p99"],
        "judgement_lag_median_seconds": figures["lag_median"],
        "judgement_lag_p99_seconds_by_minute": figures["lag_p99_by_minute"],
        "blocks_judged": figures["blocks"],
        "decisions_correct": figures["correct"],
        "finished": figures["finished"],
        "per_canary": {
            "operator_cpu_millicores_mean": round(1000 * figures["cpu_mean"] / n, 3),
            "operator_rss_mb": round(figures["rss_max"] / n, 3),
            "api_requests_per_second": round(api_rate / n, 4),
            "prometheus_queries_per_second": round(queries / n, 4),
            "prometheus_bytes_per_second": round(answered / n, 1),
        },
    }
    return result


# --- setting up -----------------------------------------------------------------------------------


def _deployments(state: _Run, api: rest.Rest) -> dict[tuple[str, str, str], str]:
    """Two Deployments per canary on the kwok nodes; returns each arm's pod name once Running."""
    box, n = state.sandbox, state.options.canaries
    run_id = uuid.uuid4().hex[:6]
    state.progress(f"creating {2 * n} Deployments on kwok nodes")
    items = []
    for first in range(0, n, PER_NAMESPACE):
        namespace = f"scale-{run_id}-{first // PER_NAMESPACE}"
        state.namespaces.append(namespace)
        box.kubectl("create", "namespace", namespace)
        for i in range(first, min(n, first + PER_NAMESPACE)):
            name = f"c{i:04d}"
            state.kinds[(namespace, name)] = fleet.kind_of(i)
            items.append(fleet.deployment(namespace, f"{name}-python", name, "python"))
            items.append(fleet.deployment(namespace, f"{name}-rust", name, "rust"))
    fleet.create_all(api, items)
    state.progress(f"waiting for {2 * n} pods")
    return fleet.wait_for_pods(box, state.namespaces, 2 * n, 300 + 0.5 * n)


def spec_object(box: Sandbox, namespace: str, name: str, interval: int) -> dict[str, Any]:
    """An analysis-only RustCanary reading the sandbox's Prometheus, deciding within a few blocks."""
    prometheus = {"address": box.prometheus_url, "lag": f"{LAG_SECONDS}s", "timeout": "10s"}
    return fleet.canary_object(namespace, name, interval, {"none": {"candidateWeight": 50}}, prometheus)


def _wait_for_operator(state: _Run, metrics_port: int, timeout: float = 120.0) -> None:
    """Until the operator serves /metrics (it has started and is about to list the canaries)."""
    assert state.operator is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state.operator.poll() is not None:
            raise RuntimeError(f"the operator exited ({state.operator.returncode}): see scale-operator.log")
        try:
            _text(f"http://127.0.0.1:{metrics_port}/metrics")
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the operator did not serve /metrics within {timeout:g}s")


def _create_canaries(state: _Run, api: rest.Rest) -> None:
    options = state.options
    items = [spec_object(state.sandbox, ns, name, options.interval_seconds) for ns, name in state.kinds]
    state.progress(f"creating {options.canaries} RustCanaries over {options.spread:g}s")
    # A share every second, on a schedule (not a sleep after each POST), so the starts are even; a
    # spread of 0 is one share, all at once.
    seconds = max(1, math.ceil(options.spread))
    began = time.monotonic()
    for second in range(seconds):
        fleet.create_all(api, items[second * len(items) // seconds : (second + 1) * len(items) // seconds])
        time.sleep(max(0.0, began + second + 1 - time.monotonic()))


# --- measuring ------------------------------------------------------------------------------------


def _parse_time(text: str | None) -> datetime | None:
    return None if not text else datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _watch(state: _Run, api: rest.Rest, began: float) -> dict[str, Any]:
    """Sample the operator and poll the canaries until the time is up."""
    assert state.operator is not None
    pid, interval = state.operator.pid, state.options.interval_seconds
    cpu: list[float] = []
    rss = 0.0
    lags: list[float] = []
    ends: list[datetime] = []  # each lag's block end, for the lag minute by minute
    judged: dict[tuple[str, str], int] = {}
    phases: dict[tuple[str, str], str] = {}
    # Blocks judged before the measurement (none when the canaries were created within seconds) are
    # not counted: the first poll would date them all to the latest look, minutes late.
    state.lists += 1
    for obj in canaries.list_objects(api, None):
        _observe(obj, interval, judged, phases, [], ends=[])
    # Half a block between polls: a canary looks at most once between two, so each block's look is
    # the one the poll sees (a LIST of 1,000 canaries every 10 s was the bench's own load).
    every = min(POLL_SECONDS, max(5.0, interval / 2))
    last_cpu, last_at, next_poll = servers.cpu_seconds(pid), time.monotonic(), time.monotonic() + every
    while time.monotonic() - began < state.options.minutes * 60:
        time.sleep(SAMPLE_SECONDS)
        if state.operator.poll() is not None:
            raise RuntimeError(f"the operator exited ({state.operator.returncode}): see scale-operator.log")
        now_cpu, now = servers.cpu_seconds(pid), time.monotonic()
        cpu.append((now_cpu - last_cpu) / (now - last_at))
        last_cpu, last_at = now_cpu, now
        rss = max(rss, servers.memory_bytes(pid, "VmRSS") / 2**20)
        if now >= next_poll:
            next_poll = now + every
            state.lists += 1
            try:
                listed = canaries.list_objects(api, None)
            except rest.KubeError as exc:  # a slow LIST on a loaded machine: the next poll catches up
                state.progress(f"a poll of the canaries failed ({exc}); the next one covers it")
                continue
            for obj in listed:
                _observe(obj, interval, judged, phases, lags, ends=ends)
            if state.options.until_done and all(phases.get(key) in TERMINAL for key in state.kinds):
                break
    correct = sum(1 for key, kind in state.kinds.items() if phases.get(key) == fleet.EXPECTED[kind])
    finished = sum(1 for p in phases.values() if p in TERMINAL)
    return {
        "cpu_mean": round(sum(cpu) / max(1, len(cpu)), 4),
        "cpu_p99": round(_percentile(cpu, 0.99), 4),
        "rss_max": round(rss, 1),
        "lag_p99": round(_percentile(lags, 0.99), 2),
        "lag_p99_by_minute": _by_minute(lags, ends),
        "lag_median": round(_percentile(lags, 0.5), 2),
        "blocks": len(lags),
        "correct": round(correct / max(1, len(state.kinds)), 4),
        "finished": finished,
    }


def _by_minute(lags: list[float], ends: list[datetime]) -> list[float]:
    """The lag's p99 for the blocks ending in each minute of the run (where a backlog built up)."""
    if not ends:
        return []
    first = min(ends)
    minutes: dict[int, list[float]] = {}
    for lag, end in zip(lags, ends, strict=True):
        minutes.setdefault(int((end - first).total_seconds() // 60), []).append(lag)
    return [round(_percentile(minutes.get(m, []), 0.99), 1) for m in range(max(minutes) + 1)]


def _observe(
    obj: dict[str, Any],
    interval: int,
    judged: dict[tuple[str, str], int],
    phases: dict[tuple[str, str], str],
    lags: list[float],
    *,
    ends: list[datetime],
) -> None:
    """Record, for every block a new look covered, the time from its end to that look."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    key = (str(meta.get("namespace")), str(meta.get("name")))
    phases[key] = str(status.get("phase", ""))
    started, looked = _parse_time(status.get("startedAt")), _parse_time(status.get("lastTickAt"))
    if started is None or looked is None or not status.get("decision"):
        return
    complete = math.floor(((looked - started).total_seconds() - LAG_SECONDS) / interval)
    for k in range(judged.get(key, 0), complete):
        end = started + timedelta(seconds=(k + 1) * interval)
        lags.append((looked - end).total_seconds())
        ends.append(end)
    judged[key] = max(judged.get(key, 0), complete)


def _apiserver_requests(box: Sandbox) -> tuple[float, float]:
    """Requests the apiserver has served (its own counter, every client): for RustCanaries and Events,
    and in all (kwok's node leases and status, the controllers, kopf's watches included)."""
    canary = total = 0.0
    for line in box.kubectl("get", "--raw", "/metrics").splitlines():
        if line.startswith("apiserver_request_total{"):
            count = float(line.rsplit(" ", 1)[1])
            total += count
            if 'resource="rustcanaries"' in line or 'resource="events"' in line:
                canary += count
    return canary, total


def _operator_requests(url: str) -> dict[str, float]:
    """The operator's own count of the requests it sent, by ``verb resource code`` (its /metrics)."""
    counts: dict[str, float] = {}
    prefix = "ferrocanary_api_requests_total{"
    for line in _text(url).splitlines():
        if not line.startswith(prefix):
            continue
        labels, value = line[len(prefix) :].rsplit("} ", 1)
        parts = dict(part.split("=", 1) for part in labels.split(","))
        call = " ".join(parts.get(k, '""').strip('"') for k in ("verb", "resource", "code"))
        counts[call] = counts.get(call, 0.0) + float(value)
    return counts


def _text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return str(response.read().decode())


def _prometheus_counters(box: Sandbox) -> tuple[float, float]:
    """(query_range requests served, bytes answered to them), from Prometheus' own /metrics."""
    requests = answered = 0.0
    for line in _text(f"{box.prometheus_url}/metrics").splitlines():
        if 'handler="/api/v1/query_range"' not in line:
            continue
        if line.startswith("prometheus_http_requests_total{"):
            requests += float(line.rsplit(" ", 1)[1])
        elif line.startswith("prometheus_http_response_size_bytes_sum{"):
            answered += float(line.rsplit(" ", 1)[1])
    return requests, answered
