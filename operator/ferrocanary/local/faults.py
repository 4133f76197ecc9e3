"""``ferrocanary bench faults``: canaries on the sandbox while their dependencies fail, counted.

Every scenario runs its own canaries in a namespace of its own, with its own operator process(es)
(``ferrocanary run -n NS``) and its own proxies, on the fleet ``bench scale`` uses (local.fleet):
two Deployments per canary on kwok nodes, every arm's metrics-contract series from one synthetic
exporter scraped by the sandbox's real Prometheus, half the Rust builds clear wins, half clear p99
regressions. Canaries route with the replicas router (2 pods: 1+1 at the 50 % step, 2+0 at either
end), so "traffic in its end state" is something the apiserver shows: the two Deployments' replicas.

Faults (``SCENARIOS``): Prometheus answers through a ``FaultProxy`` (every canary's
``prometheus.address``) switched to down/garbage/slow/huge for a window after every canary's first
look; the apiserver through a ``FaultProxy`` in front of it (the operator's kubeconfig names it)
answering a share of writes 409 or of requests 429 for the whole run; the operator SIGKILLed at
random points and started again; two peering replicas with the active one SIGKILLed; candidate pods
crash-looping (their status written as a kubelet would) or never schedulable; a spec edit the
operator refuses, or a deletion, after the first look.

Counters, per scenario (docs/faults.md defines them for users too):

- ``correct``: canaries that ended in the phase their data call for (Promoted for a clear win,
  RolledBack for a regression, whatever the scenario's fault calls for instead: RolledBack for a
  crashing or never-ready candidate, Invalid for a refused spec, gone for a deletion) with the
  Deployments' replicas in that phase's end state;
- ``double_promotions``: canaries with more than one ending recorded (two ``Promoted`` Events, or a
  ``Promoted`` and a ``RolledBack`` one, or a phase that left a terminal phase);
- ``stuck``: canaries not ended (or, deleted, still present) when the scenario's time was up;
- ``promotions_without_data``: canaries whose candidate got more traffic (a step or a promotion)
  while their Prometheus answered nothing usable (from one interval plus the fetch timeout after the
  fault began to its end), or that were Promoted with fewer blocks judged than ``minBlocks``;
- ``traffic_off_end_state``: canaries that ended whose Deployments' replicas are not the end state of
  the phase they ended in (Promoted: 0 Python + 2 Rust; any other ending: 2 Python + 0 Rust);
- ``max_rss_mb``: the largest resident memory of the scenario's operator processes, sampled;
- ``seconds``: from creating the canaries to the last one ending (or the time limit).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import ssl
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ferrocanary.bench import servers
from ferrocanary.kube import canaries, client, rest
from ferrocanary.kube.resources import get_replicas
from ferrocanary.local import fleet, processes
from ferrocanary.local.faultproxy import FaultProxy, Mode
from ferrocanary.local.sandbox import Sandbox
from ferrocanary.local.toolchain import repo_root
from ferrocanary.policy.state import TERMINAL  # a StrEnum: phase and reason strings are members

Progress = Callable[[str], None]
JOB = "faults"
TOTAL = 2  # pods per canary (replicas router): 1 + 1 at the 50 % step
TIMEOUT_SECONDS = 5  # each canary's prometheus.timeout
PEERING = "ferrocanary"
PEERING_LIFETIME = 12
GONE = "Deleted"  # the expected ending of a canary deleted mid-flight
POLL_SECONDS = 2.0
# A SIGKILL comes this long after the new process's first look: a random point of its work (a look,
# a status write, a scale, an ending). Counted from its first look, not its start: on a loaded
# machine an operator's start-up (imports, kopf's first list and watch) can take longer than the gap.
KILL_GAP_SECONDS = (0.0, 20.0)


@dataclass(frozen=True)
class Plan:
    """One scenario: what fails, for how many canaries, and which ending each canary should reach."""

    name: str
    fault: str  # one line for the table
    quick: int = 4  # canaries with --quick
    full: int = 10
    prometheus: Mode | None = None  # the Prometheus proxy's mode during the fault window
    apiserver: Mode | None = None  # the apiserver proxy's mode for the whole run
    event: str = ""  # kill | failover | crash | unready | invalid | delete
    expected: str = ""  # every canary's ending, when the fault decides it (else its data do)


SCENARIOS: dict[str, Plan] = {
    p.name: p
    for p in (
        Plan(
            "operator-killed",
            "SIGKILL 0-20 s after each new process's first look, start another",
            20,
            50,
            event="kill",
        ),
        Plan("prometheus-down", "Prometheus answers 503 for the window", prometheus=Mode.DOWN),
        Plan(
            "prometheus-garbage",
            "HTML, JSON without data, non-numeric samples, truncated JSON",
            prometheus=Mode.GARBAGE,
        ),
        Plan("prometheus-slow", "every answer held 20 s (timeout 5 s)", prometheus=Mode.SLOW),
        Plan("prometheus-huge", "every answer 64 MiB", prometheus=Mode.HUGE),
        Plan("apiserver-conflicts", "30 % of the operator's writes get 409", apiserver=Mode.CONFLICT),
        Plan("apiserver-throttled", "30 % of requests get 429, Retry-After 1", apiserver=Mode.THROTTLE),
        Plan(
            "candidate-crashloop",
            "a candidate pod restarts after exit 1, CrashLoopBackOff",
            event="crash",
            expected="RolledBack",
        ),
        Plan(
            "candidate-never-ready",
            "candidate pods unschedulable, progressDeadline 20 s",
            event="unready",
            expected="RolledBack",
        ),
        Plan(
            "spec-invalid-midflight",
            "informationHorizon edited to 9999999h after the first look",
            event="invalid",
            expected="Invalid",
        ),
        Plan("deleted-midflight", "the canary deleted after its first look", event="delete", expected=GONE),
        Plan("two-replicas-failover", "two peering replicas, the active one SIGKILLed", event="failover"),
    )
}


@dataclass(frozen=True)
class Options:
    quick: bool = True
    scenarios: tuple[str, ...] = ()  # empty: every scenario
    canaries: int | None = None  # per scenario, instead of the plan's count
    interval_seconds: int = 10
    fault_seconds: float = 60.0  # how long a Prometheus fault lasts
    limit_seconds: float = 900.0  # a scenario's canaries not ended by then are stuck
    parallel: int = 3  # scenarios run at once
    rps: float = 1000.0
    seed: int = 20251129

    def count(self, plan: Plan) -> int:
        return self.canaries or (plan.quick if self.quick else plan.full)


def _quiet(_: str) -> None:
    return


def run(options: Options, sandbox: Sandbox | None = None, progress: Progress = _quiet) -> dict[str, Any]:
    """Run the scenarios and return ``{"scenarios": [...]}``; on its own sandbox unless one is given."""
    names = options.scenarios or tuple(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    own = sandbox is None
    box = sandbox or Sandbox(f"bench-faults-{os.getpid()}")
    if own:
        progress("starting the sandbox")
        box.up(progress)
    run_id = uuid.uuid4().hex[:5]
    scenarios = [
        _Scenario(box, SCENARIOS[n], options, f"faults-{run_id}-{i:02d}", progress)
        for i, n in enumerate(names)
    ]
    exporter: subprocess.Popen[bytes] | None = None
    try:
        _install(box)
        fleet.nodes(box, 1 + sum(2 * TOTAL * options.count(s.plan) for s in scenarios) // fleet.PODS_PER_NODE)
        for scenario in scenarios:
            scenario.create_workload()
        configs = [arm for s in scenarios for arm in s.arm_configs()]
        port = processes.free_port()
        # Blocks shorter than 10 s want fresher counts than every 5 s (a block would see 0 or 2 updates).
        fresh = options.interval_seconds < 10
        exporter = fleet.start_exporter(box, configs, port, JOB, 1.0 if fresh else 5.0)
        fleet.add_scrape_job(box, port, JOB, "1s" if fresh else fleet.SCRAPE)
        fleet.wait_for_series(box, len(configs), JOB)
        with ThreadPoolExecutor(max_workers=max(1, options.parallel)) as pool:
            results = list(pool.map(lambda s: s.run(), scenarios))
        return {"quick": options.quick, "interval_seconds": options.interval_seconds, "scenarios": results}
    finally:
        for scenario in scenarios:
            scenario.clean_up()
        if exporter is not None:
            servers.stop_process(exporter)
        fleet.remove_scrape_job(box, JOB)
        if own:
            box.down()


def _install(box: Sandbox) -> None:
    box.kubectl(
        "apply", "--server-side", "-f", str(repo_root() / "crds" / "rustcanaries.ferrocanary.io.yaml")
    )
    peering = repo_root() / "charts" / "ferrocanary" / "crds" / "kopf-peering.yaml"
    box.kubectl("apply", "--server-side", "-f", str(peering))
    for crd in ("rustcanaries.ferrocanary.io", "kopfpeerings.kopf.dev"):
        box.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")


def _proxy_kubeconfig(box: Sandbox, proxy: FaultProxy, path: Path) -> Path:
    """A kubeconfig whose server is the proxy (plain HTTP on 127.0.0.1; the proxy holds the cert)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "proxy", "cluster": {"server": proxy.url}}],
        "users": [{"name": "proxy", "user": {}}],
        "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}],
        "current-context": "proxy",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _upstream_tls(box: Sandbox) -> tuple[ssl.SSLContext, str]:
    """The TLS the sandbox's kubeconfig uses (its CA, the admin client certificate), and its server."""
    found = client.credentials(str(box.kubeconfig))
    context = ssl.create_default_context(cafile=found.ca_path)
    if found.certificate_path and found.private_key_path:
        context.load_cert_chain(found.certificate_path, found.private_key_path)
    return context, found.server


@dataclass
class _Canary:
    """What the benchmark saw of one canary."""

    name: str
    kind: str  # win | slow
    expected: str
    ended: str = ""  # the phase it ended in, GONE, or "" while running
    phases: list[str] = field(default_factory=list)  # every distinct phase seen, in order
    step: int = -1
    acted: bool = False  # the scenario's per-canary fault was injected
    more_traffic_without_data: bool = False
    blocks_used: int | None = None


class _Scenario:
    """One scenario's namespace, proxies, operators and observations."""

    def __init__(
        self, box: Sandbox, plan: Plan, options: Options, namespace: str, progress: Progress
    ) -> None:
        self.box, self.plan, self.options, self.progress = box, plan, options, progress
        self.namespace = namespace
        index = int(namespace.rsplit("-", 1)[1])
        self.rng = random.Random(options.seed + index)
        count = options.count(plan)
        self.canaries = {
            f"c{i:03d}": _Canary(
                f"c{i:03d}", fleet.kind_of(i), plan.expected or fleet.EXPECTED[fleet.kind_of(i)]
            )
            for i in range(count)
        }
        self.api = rest.Rest(client.api_client(str(box.kubeconfig)), limit=rest.RateLimit(0, 1))
        self.prometheus: FaultProxy | None = None
        self.apiserver: FaultProxy | None = None
        self.operators: list[subprocess.Popen[bytes]] = []
        self.kubeconfig = box.kubeconfig
        self.rss = 0.0
        self.kills = 0
        self.fault_began: float | None = None
        self.fault_ended: float | None = None
        self.latest_tick = ""  # the newest lastTickAt seen on any canary (RFC 3339 UTC: sorts as text)
        self.tick_at_start = ""  # ... when the current operator process was started
        self.next_kill: float | None = None
        self.lock = threading.Lock()

    # --- setting up -------------------------------------------------------------------------------

    def create_workload(self) -> None:
        self.box.kubectl("create", "namespace", self.namespace)
        items = []
        for name in self.canaries:
            items.append(fleet.deployment(self.namespace, f"{name}-python", name, "python", TOTAL))
            rust = fleet.deployment(self.namespace, f"{name}-rust", name, "rust", 0)
            if self.plan.event == "unready":  # no node has this label: its pods stay Pending
                rust["spec"]["template"]["spec"]["nodeSelector"] = {"ferrocanary.io/nowhere": "true"}
            items.append(rust)
        fleet.apply_list(self.box, items)

    def arm_configs(self) -> list[dict[str, Any]]:
        # Pod names of the Deployments' form (the default selectors' regex), whichever pods run now.
        pods = {
            (self.namespace, name, build): f"{name}-{build}-7f9c8-x{i:03d}"
            for i, name in enumerate(self.canaries)
            for build in ("python", "rust")
        }
        kinds = {(self.namespace, c.name): c.kind for c in self.canaries.values()}
        return fleet.arms(pods, kinds, self.options.rps)

    def _spec(self, name: str) -> dict[str, Any]:
        assert self.prometheus is not None
        interval = self.options.interval_seconds
        prometheus = {"address": self.prometheus.url, "lag": f"{interval}s", "timeout": f"{TIMEOUT_SECONDS}s"}
        body = fleet.canary_object(self.namespace, name, interval, {"replicas": {"total": TOTAL}}, prometheus)
        if self.plan.event == "unready":
            body["spec"]["progressDeadline"] = "20s"
        return body

    def _start_proxies(self) -> None:
        upstream = self.box.prometheus_url
        self.prometheus = FaultProxy(
            upstream, processes.free_port(), slow_seconds=20.0, seed=self.options.seed
        )
        self.prometheus.start()
        if self.plan.apiserver is not None:
            tls, server = _upstream_tls(self.box)
            self.apiserver = FaultProxy(
                server, processes.free_port(), upstream_ssl=tls, fraction=0.3, seed=self.options.seed
            )
            self.apiserver.start()
            self.apiserver.mode = self.plan.apiserver
            self.kubeconfig = _proxy_kubeconfig(
                self.box, self.apiserver, self.box.dir / f"{self.namespace}-proxy.kubeconfig"
            )

    def _start_operator(self, pod: str = "") -> subprocess.Popen[bytes]:
        args: tuple[str, ...] = ("-n", self.namespace)
        env = {"FERROCANARY_METRICS_PORT": "0"}
        if pod:
            args += ("--peering", PEERING)
            env |= {"POD_NAME": pod, "FERROCANARY_PEERING_LIFETIME": str(PEERING_LIFETIME)}
        log = f"{self.namespace}-operator{('-' + pod) if pod else ''}.log"
        proc = fleet.start_operator(self.box, log, args, env, kubeconfig=self.kubeconfig)
        self.operators.append(proc)
        return proc

    def _start_operators(self) -> None:
        if self.plan.event == "failover":
            self.api.post(
                f"/apis/kopf.dev/v1/namespaces/{self.namespace}/kopfpeerings",
                {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}},
            )
            self._start_operator("op-0")
            time.sleep(1.5)  # op-0 is older: the higher priority, the one that acts first
            self._start_operator("op-1")
        else:
            self._start_operator()

    # --- running ----------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.progress(f"{self.plan.name}: {len(self.canaries)} canaries")
        self._start_proxies()
        self._start_operators()
        fleet.apply_list(self.box, [self._spec(name) for name in self.canaries])
        began = time.monotonic()
        while time.monotonic() - began < self.options.limit_seconds:
            time.sleep(POLL_SECONDS)
            self._sample_rss()
            self._observe(self._list())
            if all(c.ended for c in self.canaries.values()):
                break
            self._prometheus_window()
            if self.plan.event == "kill":
                self._maybe_kill()
            elif self.plan.event == "failover":
                self._failover()
        seconds = time.monotonic() - began
        time.sleep(POLL_SECONDS)  # an ending's last replica write lands
        return self._figures(seconds)

    def _list(self) -> dict[str, dict[str, Any]]:
        return {str(o["metadata"]["name"]): o for o in canaries.list_objects(self.api, self.namespace)}

    def _sample_rss(self) -> None:
        for proc in self.operators:
            if proc.poll() is None:
                with contextlib.suppress(OSError, ValueError):
                    self.rss = max(self.rss, servers.memory_bytes(proc.pid, "VmRSS") / 2**20)

    def _faulty_now(self) -> bool:
        """Prometheus has answered nothing usable for longer than a look that fetched before it."""
        if self.fault_began is None or self.fault_ended is not None:
            return False
        grace = self.options.interval_seconds + TIMEOUT_SECONDS + POLL_SECONDS
        return time.monotonic() - self.fault_began > grace

    def _observe(self, found: dict[str, dict[str, Any]]) -> None:
        faulty = self._faulty_now()
        for canary in self.canaries.values():
            obj = found.get(canary.name)
            if obj is None:
                if canary.acted and self.plan.event == "delete":
                    canary.ended = canary.ended or GONE
                continue
            status = obj.get("status") or {}
            self.latest_tick = max(self.latest_tick, str(status.get("lastTickAt") or ""))
            phase = str(status.get("phase", ""))
            if phase and (not canary.phases or canary.phases[-1] != phase):
                canary.phases.append(phase)
            raw_step = status.get("stepIndex")
            step = -1 if raw_step is None else int(raw_step)
            if faulty and (step > canary.step or phase in ("Promoting", "Promoted")) and not canary.ended:
                canary.more_traffic_without_data = True
            canary.step = max(canary.step, step)
            if "blocksUsed" in status:
                canary.blocks_used = int(status["blocksUsed"])
            if phase in TERMINAL and self.plan.event != "delete":
                canary.ended = canary.ended or phase
            self._per_canary_fault(canary, status)

    def _per_canary_fault(self, canary: _Canary, status: dict[str, Any]) -> None:
        if canary.acted or not status.get("lastTickAt") or status.get("phase") in TERMINAL:
            return
        event = self.plan.event
        if event == "crash" and status.get("phase") == "Progressing":
            self._crash(canary.name)
        elif event == "invalid" and status.get("phase") == "Progressing":
            patch = {"spec": {"analysis": {"informationHorizon": "9999999h"}}}
            self.api.patch(canaries.path(self.namespace, canary.name), patch)
        elif event == "delete" and status.get("phase") == "Progressing":
            self.api.delete(canaries.path(self.namespace, canary.name))
        else:
            return
        canary.acted = True

    def _crash(self, name: str) -> None:
        """A candidate pod on a node no kubelet serves, its status written as a kubelet's after exit 1."""
        pods = f"/api/v1/namespaces/{self.namespace}/pods"
        pod = f"{name}-rust-crash"
        self.api.post(
            pods,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod, "labels": {"app": name, "build": "rust"}},
                "spec": {
                    "nodeName": "ghost-node",
                    "containers": [{"name": "scorer", "image": "scorer-rust:1"}],
                },
            },
        )
        terminated = {"exitCode": 1, "reason": "Error"}
        container = {"name": "scorer", "image": "scorer-rust:1", "imageID": "", "ready": False}
        container |= {"restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
        container |= {"lastState": {"terminated": terminated}}
        self.api.patch(
            f"{pods}/{pod}/status", {"status": {"phase": "Running", "containerStatuses": [container]}}
        )

    def _all_looked(self) -> bool:
        return all(bool(c.phases) and c.phases[-1] != "Pending" for c in self.canaries.values())

    def _prometheus_window(self) -> None:
        mode, proxy = self.plan.prometheus, self.prometheus
        if mode is None or proxy is None or self.fault_ended is not None:
            return
        now = time.monotonic()
        if self.fault_began is None and self._all_looked():
            proxy.mode, self.fault_began = mode, now
        elif self.fault_began is not None and now - self.fault_began >= self.options.fault_seconds:
            proxy.mode, self.fault_ended = Mode.PASS, now

    def _maybe_kill(self) -> None:
        """Once the current process has looked at a canary, SIGKILL it at a random point after."""
        if self.next_kill is None and self.latest_tick > self.tick_at_start:
            self.next_kill = time.monotonic() + self.rng.uniform(*KILL_GAP_SECONDS)
        if self.next_kill is not None and time.monotonic() >= self.next_kill:
            self._kill_and_restart()
            self.next_kill, self.tick_at_start = None, self.latest_tick

    def _kill_and_restart(self) -> None:
        proc = self.operators[-1]
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        self.kills += 1
        self._start_operator()

    def _failover(self) -> None:
        """SIGKILL the active replica (op-0) once every canary is past its first look."""
        if self.kills or not self._all_looked():
            return
        proc = self.operators[0]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        self.kills = 1

    # --- counting ---------------------------------------------------------------------------------

    def _replicas(self, name: str) -> tuple[int, int]:
        def read(deployment: str) -> int:
            try:
                return get_replicas(self.api, self.namespace, deployment)
            except rest.NotFoundError:
                return -1

        return read(f"{name}-python"), read(f"{name}-rust")

    @staticmethod
    def _end_state(phase: str) -> tuple[int, int]:
        return (0, TOTAL) if phase == "Promoted" else (TOTAL, 0)

    def _endings(self, name: str) -> Counter[str]:
        listed = self.api.get(
            f"/api/v1/namespaces/{self.namespace}/events?fieldSelector=involvedObject.name%3D{name}"
        )
        counts: Counter[str] = Counter()
        for event in listed.get("items", []):
            if (
                event.get("reason") in TERMINAL
                and (event.get("involvedObject") or {}).get("kind") == canaries.KIND
            ):
                counts[str(event["reason"])] += int(event.get("count") or 1)
        return counts

    def _double(self, canary: _Canary) -> tuple[bool, bool]:
        """(two different endings recorded, one ending's Event posted more than once)."""
        endings = self._endings(canary.name)
        terminal_seen = [p for p in canary.phases if p in TERMINAL]
        left_terminal = bool(terminal_seen) and canary.phases[-1] not in TERMINAL and canary.ended != GONE
        return len(endings) > 1 or len(set(terminal_seen)) > 1 or left_terminal, any(
            n > 1 for n in endings.values()
        )

    def _figures(self, seconds: float) -> dict[str, Any]:
        correct = double = repeated = stuck = blind = off = 0
        for canary in self.canaries.values():
            traffic = self._replicas(canary.name)
            on_end = bool(canary.ended) and traffic == self._end_state(canary.ended)
            correct += int(canary.ended == canary.expected and on_end)
            off += int(bool(canary.ended) and not on_end)
            stuck += int(not canary.ended)
            two, again = self._double(canary)
            double, repeated = double + int(two), repeated + int(again)
            few = canary.ended == "Promoted" and (canary.blocks_used or 0) < fleet.MIN_BLOCKS
            blind += int(canary.more_traffic_without_data or few)
        figures: dict[str, Any] = {
            "scenario": self.plan.name,
            "fault": self.plan.fault,
            "canaries": len(self.canaries),
            "correct": correct,
            "double_promotions": double,
            "stuck": stuck,
            "promotions_without_data": blind,
            "traffic_off_end_state": off,
            "max_rss_mb": round(self.rss, 1),
            "seconds": round(seconds, 1),
            "repeated_ending_events": repeated,
            "endings": dict(Counter(c.ended or "running" for c in self.canaries.values())),
        }
        if self.plan.event in ("kill", "failover"):
            figures["kills"] = self.kills
        for label, proxy in (("prometheus", self.prometheus), ("apiserver", self.apiserver)):
            if proxy is not None and (self.plan.prometheus if label == "prometheus" else True):
                figures[f"{label}_requests_faulted"] = proxy.faulted
                figures[f"{label}_requests"] = proxy.requests
        self.progress(f"{self.plan.name}: {correct}/{len(self.canaries)} correct in {seconds:.0f} s")
        return figures

    # --- cleaning up ------------------------------------------------------------------------------

    def clean_up(self) -> None:
        for proc in self.operators:
            if proc.poll() is None:
                servers.stop_process(proc)
        for proxy in (self.prometheus, self.apiserver):
            if proxy is not None:
                proxy.stop()
        with contextlib.suppress(rest.KubeError):
            for name in self._list():
                with contextlib.suppress(rest.KubeError):
                    self.api.patch(canaries.path(self.namespace, name), {"metadata": {"finalizers": None}})
        self.box.kubectl("delete", "namespace", self.namespace, "--wait=false", check=False)
