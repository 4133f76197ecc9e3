"""`ferrocanary bench workload`: the Python and Rust builds of textscore side by side, open loop.

Both builds run as real servers on 127.0.0.1. After a warm-up and a short calibration (the Python
build's service time sets the comparison rate: half its capacity, a sane operating point), the
same constant arrival rate is driven against each build in turn, alternating which goes first,
for several rounds (so drift on this shared machine hits both alike). Latency is client-side
from each request's intended send time (coordinated-omission correct, see loadgen.py); CPU
seconds and peak RSS come from /proc of each server; the hot-path share from the service's
/debug/hotpath. Then, per build, a search over rates finds the highest rate whose p99 stays
within the SLO with no errors. The client shares the machine's two cores with the server under
test, which is why the ratios, measured side by side in one run, are the figures to read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ferrocanary.bench import corpus, loadgen, servers

BUILDS = ("python", "rust")
REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Settings:
    quick: bool
    rounds: int
    duration: float
    search_duration: float
    search_steps: int
    slo_ms: float
    connections: int
    batch: int
    words: int
    rate: float | None
    max_rate: float
    rust_fault: str | None
    build: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        quick = bool(args.quick)
        return cls(
            quick=quick,
            rounds=args.rounds or (3 if quick else 5),
            duration=args.duration or (4.0 if quick else 10.0),
            search_duration=args.search_duration or (2.5 if quick else 5.0),
            search_steps=args.search_steps if args.search_steps is not None else (5 if quick else 8),
            slo_ms=args.slo_ms,
            connections=args.connections,
            batch=args.batch,
            words=args.words,
            rate=args.rate,
            max_rate=args.max_rate,
            rust_fault=args.rust_fault,
            build=not args.no_build,
        )


@dataclass
class Arm:
    """Everything measured for one build."""

    server: servers.Server
    histogram: Any = field(default_factory=loadgen.new_histogram)
    ok: int = 0
    errors: int = 0
    elapsed: float = 0.0
    cpu_seconds: float = 0.0
    hot_path_cpu: float = 0.0
    service_ms: float = 0.0
    max_rps_at_slo: float = 0.0
    search: list[dict[str, float]] = field(default_factory=list)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="3 short rounds and a short search (about 2 min)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    parser.add_argument("--rounds", type=int, default=0, help="alternating rounds (default 5, quick 3)")
    parser.add_argument(
        "--duration", type=float, default=0.0, help="seconds per build per round (10, quick 4)"
    )
    parser.add_argument(
        "--rate", type=float, default=None, help="comparison rate (default: half the python capacity)"
    )
    parser.add_argument("--slo-ms", type=float, default=50.0, help="p99 SLO of the max-rate search (ms)")
    parser.add_argument(
        "--search-steps", type=int, default=None, help="rates tried per build (0 skips the search)"
    )
    parser.add_argument(
        "--search-duration",
        type=float,
        default=0.0,
        help="seconds per rate tried by the search (5, quick 2.5)",
    )
    parser.add_argument("--max-rate", type=float, default=4000.0, help="highest rate the search tries (rps)")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections per build")
    parser.add_argument("--batch", type=int, default=16, help="texts per request")
    parser.add_argument("--words", type=int, default=60, help="words per text")
    parser.add_argument(
        "--rust-fault", choices=("slow", "leak", "panic"), default=None, help="inject a fault"
    )
    parser.add_argument("--no-build", action="store_true", help="do not run workloads/build.sh first")


def ensure_built() -> None:
    """Builds/installs both builds (idempotent, under a second when nothing changed)."""
    script = REPO / "workloads" / "build.sh"
    if script.exists():
        subprocess.run([str(script), sys.executable], check=True, stdout=sys.stderr)


def _calibrate(server: servers.Server, bodies: list[bytes], count: int = 12) -> float:
    """Mean milliseconds per request, one at a time (an idle server's service time)."""
    import http.client  # noqa: PLC0415

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        times = []
        for i in range(count + 3):
            started = time.perf_counter()
            conn.request(
                "POST",
                "/v1/score",
                body=bodies[i % len(bodies)],
                headers={"Content-Type": "application/json"},
            )
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise servers.ServerError(
                    f"{server.build} build answered {response.status} while calibrating"
                )
            if i >= 3:  # the first requests warm caches and connections
                times.append(time.perf_counter() - started)
        return 1000.0 * sum(times) / len(times)
    finally:
        conn.close()


def _drive(
    server: servers.Server, requests: list[bytes], rate: float, duration: float, connections: int
) -> loadgen.Outcome:
    if server.process.poll() is not None:
        raise servers.ServerError(
            f"the {server.build} server exited with {server.process.returncode}:\n{servers.tail(server.log)}"
        )
    return asyncio.run(
        loadgen.run_constant_rate(
            "127.0.0.1", server.port, requests, rate=rate, duration=duration, connections=connections
        )
    )


def _passes(outcome: loadgen.Outcome, slo_ms: float) -> bool:
    return (
        outcome.errors == 0
        and outcome.failures == 0
        and outcome.percentile_ms(99) <= slo_ms
        and outcome.achieved_rps >= 0.95 * outcome.rate
    )


class _Progress:
    """A progress bar on stderr (rich), or nothing."""

    def __init__(self, total: int) -> None:
        from rich.console import Console  # noqa: PLC0415
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

        self.bar = Progress(
            TextColumn("{task.description:<44}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.task = self.bar.add_task("starting", total=total)

    def __enter__(self) -> _Progress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def step(self, description: str, advance: float = 1.0) -> None:
        self.bar.update(self.task, description=description, advance=advance)


def _search(arm: Arm, requests: list[bytes], start: float, settings: Settings, progress: _Progress) -> None:
    """Highest passing rate: grow by 1.5x until a rate fails, then bisect."""
    good, bad = 0.0, math.inf
    rate = max(1.0, min(start, settings.max_rate))
    for step in range(settings.search_steps):
        progress.step(
            f"{arm.server.build}: SLO search {step + 1}/{settings.search_steps} at {rate:.0f} rps", 0
        )
        outcome = _drive(arm.server, requests, rate, settings.search_duration, settings.connections)
        passed = _passes(outcome, settings.slo_ms)
        arm.search.append({"rate": rate, "p99_ms": outcome.percentile_ms(99), "passed": float(passed)})
        progress.step(f"{arm.server.build}: SLO search", 1)
        if passed:
            good = rate
        else:
            bad = rate
        if passed and rate >= settings.max_rate:
            break
        nxt = (
            min(rate * 1.5, settings.max_rate) if bad == math.inf else (good + bad) / 2 if good else rate / 2
        )
        if good and bad < math.inf and bad / good < 1.08:
            break
        rate = nxt
    arm.max_rps_at_slo = good


def measure(settings: Settings, log_dir: Path) -> dict[str, Any]:
    bodies = corpus.bodies(batch=settings.batch, words=settings.words)
    requests = [loadgen.request_bytes("/v1/score", body) for body in bodies]
    fault_env = {"TEXTSCORE_FAULT": settings.rust_fault} if settings.rust_fault else {}
    arms: dict[str, Arm] = {}
    try:
        for build in BUILDS:
            env = fault_env if build == "rust" else {}
            arms[build] = Arm(servers.start(build, log_dir / f"{build}.log", env))
        total = 2 + 2 * settings.rounds + 2 * settings.search_steps
        with _Progress(total) as progress:
            for build, arm in arms.items():
                progress.step(f"{build}: warm-up and calibration", 0)
                arm.service_ms = _calibrate(arm.server, bodies)
                _drive(
                    arm.server,
                    requests,
                    max(2.0, 300.0 / max(arm.service_ms, 0.1)),
                    1.0,
                    settings.connections,
                )
                progress.step(f"{build}: warm-up and calibration")
            rate = settings.rate or max(2.0, round(0.5 * 1000.0 / arms["python"].service_ms, 1))
            for round_ in range(settings.rounds):
                order = BUILDS if round_ % 2 == 0 else BUILDS[::-1]
                for build in order:
                    arm = arms[build]
                    progress.step(f"round {round_ + 1}/{settings.rounds}: {build} at {rate:.0f} rps", 0)
                    cpu0 = servers.cpu_seconds(arm.server.pid)
                    hot0 = servers.get_json(arm.server.url + "/debug/hotpath")
                    outcome = _drive(arm.server, requests, rate, settings.duration, settings.connections)
                    hot1 = servers.get_json(arm.server.url + "/debug/hotpath")
                    arm.cpu_seconds += servers.cpu_seconds(arm.server.pid) - cpu0
                    arm.hot_path_cpu += float(hot1["hot_path_cpu_seconds"]) - float(
                        hot0["hot_path_cpu_seconds"]
                    )
                    arm.histogram.add(outcome.histogram)
                    arm.ok += outcome.ok
                    arm.errors += outcome.errors + outcome.failures
                    arm.elapsed += outcome.elapsed
                    progress.step(f"round {round_ + 1}/{settings.rounds}: {build}")
            if settings.search_steps > 0:
                for arm in arms.values():
                    start = 0.7 * 1000.0 / arm.service_ms
                    _search(arm, requests, start, settings, progress)
        rss = {build: servers.memory_bytes(arm.server.pid) for build, arm in arms.items()}
    finally:
        for arm in arms.values():
            servers.stop(arm.server)
    return _report(settings, rate, arms, rss)


def _figures(arm: Arm, rss_bytes: int) -> dict[str, Any]:
    hist = arm.histogram
    return {
        "p50_ms": hist.get_value_at_percentile(50) / 1000.0,
        "p99_ms": hist.get_value_at_percentile(99) / 1000.0,
        "p999_ms": hist.get_value_at_percentile(99.9) / 1000.0,
        "rps": arm.ok / arm.elapsed if arm.elapsed else 0.0,
        "cpu_seconds": arm.cpu_seconds,
        "requests_per_cpu_second": arm.ok / arm.cpu_seconds if arm.cpu_seconds else 0.0,
        "rss_mb": rss_bytes / 2**20,
        "max_rps_at_slo": arm.max_rps_at_slo,
        "hot_path_share": arm.hot_path_cpu / arm.cpu_seconds if arm.cpu_seconds else 0.0,
        "requests": arm.ok,
        "errors": arm.errors,
        "idle_service_ms": arm.service_ms,
        "search": arm.search,
    }


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _report(settings: Settings, rate: float, arms: dict[str, Arm], rss: dict[str, int]) -> dict[str, Any]:
    py = _figures(arms["python"], rss["python"])
    rs = _figures(arms["rust"], rss["rust"])
    return {
        "python": py,
        "rust": rs,
        "ratios": {
            "p99": _ratio(rs["p99_ms"], py["p99_ms"]),
            "requests_per_cpu_second": _ratio(rs["requests_per_cpu_second"], py["requests_per_cpu_second"]),
            "rss": _ratio(rs["rss_mb"], py["rss_mb"]),
            "max_rps_at_slo": _ratio(rs["max_rps_at_slo"], py["max_rps_at_slo"]),
        },
        "settings": {**asdict(settings), "comparison_rate": rate},
    }


def _table(report: dict[str, Any]) -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    py, rs, ratios = report["python"], report["rust"], report["ratios"]
    s = report["settings"]
    table = Table(
        title=f"textscore: python vs rust, open loop at {s['comparison_rate']:.0f} rps, "
        f"{s['rounds']} alternating rounds of {s['duration']:.0f} s",
        caption="latency client-side from intended send time; "
        f"max rate: p99 <= {s['slo_ms']:.0f} ms, no errors",
    )
    for column in ("", "python", "rust", "rust / python"):
        table.add_column(column, justify="right" if column else "left")
    rows = [
        ("p50 latency (ms)", "p50_ms", None, "{:.2f}"),
        ("p99 latency (ms)", "p99_ms", "p99", "{:.2f}"),
        ("p99.9 latency (ms)", "p999_ms", None, "{:.2f}"),
        ("throughput (rps)", "rps", None, "{:.1f}"),
        ("server CPU (s)", "cpu_seconds", None, "{:.2f}"),
        ("requests per CPU-second", "requests_per_cpu_second", "requests_per_cpu_second", "{:.0f}"),
        ("peak RSS (MiB)", "rss_mb", "rss", "{:.1f}"),
        ("max rps at SLO", "max_rps_at_slo", "max_rps_at_slo", "{:.0f}"),
        ("hot path share of server CPU", "hot_path_share", None, "{:.1%}"),
        ("errors", "errors", None, "{}"),
    ]
    for label, key, ratio_key, fmt in rows:
        ratio = ratios.get(ratio_key) if ratio_key else None
        table.add_row(
            label, fmt.format(py[key]), fmt.format(rs[key]), f"{ratio:.2f}x" if ratio is not None else ""
        )
    Console().print(table)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_args(args)
    try:
        if settings.build:
            ensure_built()
        with tempfile.TemporaryDirectory(prefix="ferrocanary-bench-") as tmp:
            report = measure(settings, Path(tmp))
    except (servers.ServerError, subprocess.CalledProcessError, OSError) as exc:
        print(f"bench workload: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _table(report)
    return 0
