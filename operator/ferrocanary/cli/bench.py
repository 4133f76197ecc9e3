"""``ferrocanary bench``: benchmark harnesses that print their figures (``judge``: the statistics
simulation against the peers; ``workload``: the reference service's load test, from bench.workload)."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from typing import Any

EXIT_MISSING = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("bench", help="run a benchmark and print its figures")
    benches = parser.add_subparsers(dest="bench", metavar="BENCH")

    judge = benches.add_parser(
        "judge",
        help="simulate canaries; compare ferrocanary's judge with Kayenta-, Flagger-style and naive judges",
    )
    judge.add_argument(
        "--quick", action="store_true", help="fewer runs (under 2 minutes); still enough for the targets"
    )
    judge.add_argument(
        "--runs", type=int, metavar="N", help="runs per cell (default: 1000, quick: 400 on exp1.1)"
    )
    judge.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    judge.add_argument("--seed", type=int, default=20250101, help="master seed (results are reproducible)")
    judge.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    judge.set_defaults(func=run_judge)

    scale = benches.add_parser(
        "scale",
        help="many RustCanaries on the sandbox with the real operator process: its CPU, memory, "
        "apiserver and Prometheus load, judgement lag and decisions",
        description="Runs N analysis-only RustCanaries with the real operator process on the sandbox and "
        "measures it from the moment every canary exists. api_requests_per_second is the operator's own: "
        "the requests it sent to the API server, from its counter ferrocanary_api_requests_total (by verb, "
        "resource and code in api_requests_per_second_by_call; kopf's watches and finalizer writes are not "
        "in it). apiserver_requests_per_second is the API server's own count of every client's requests "
        "(kwok's nodes, the controllers and kopf included), apiserver_canary_requests_per_second its count "
        "for RustCanaries and Events; the benchmark's own reads are subtracted from both.",
    )
    scale.add_argument("--canaries", type=int, metavar="N", help="RustCanaries to run (default 100)")
    scale.add_argument("--minutes", type=float, default=10.0, metavar="M", help="measuring time (default 10)")
    scale.add_argument(
        "--interval", type=int, metavar="S", help="each canary's analysis interval in seconds (default 60)"
    )
    scale.add_argument(
        "--rps", type=float, default=1000.0, metavar="R", help="requests per second per build (default 1000)"
    )
    scale.add_argument(
        "--spread",
        type=float,
        metavar="S",
        help="create the canaries evenly over S seconds (default: one interval, so their blocks end at "
        "different moments, as canaries started at different times do; 0: all at once, every block "
        "ending in the same seconds)",
    )
    scale.add_argument("--quick", action="store_true", help="200 canaries, 30 s intervals, 6 minutes")
    scale.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    scale.set_defaults(func=run_scale)

    faults = benches.add_parser(
        "faults",
        help="canaries on the sandbox while Prometheus, the apiserver, the operator or the candidate "
        "fail: how many end as their data call for, with traffic where their ending puts it",
    )
    faults.add_argument(
        "--quick",
        action="store_true",
        help="20 canaries for operator-killed, 4 for the others (default: 50, 10)",
    )
    faults.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="NAME",
        help="run this scenario (repeatable; default: all): " + ", ".join(_fault_scenarios()),
    )
    faults.add_argument(
        "--canaries", type=int, metavar="N", help="canaries per scenario instead of the default"
    )
    faults.add_argument(
        "--parallel", type=int, default=3, metavar="K", help="scenarios run at once (default 3)"
    )
    faults.add_argument(
        "--seed", type=int, default=20251129, help="seed of the kill times (reproducible plan)"
    )
    faults.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    faults.set_defaults(func=run_faults)

    workload = benches.add_parser("workload", help="load-test the reference workload (Python vs Rust build)")
    try:
        module = importlib.import_module("ferrocanary.bench.workload")
    except ImportError as exc:
        reason = str(exc)
        workload.set_defaults(func=lambda _args: _missing_workload(reason))
    else:
        module.add_arguments(workload)
        workload.set_defaults(func=module.run)

    parser.set_defaults(func=lambda _args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _missing_workload(reason: str) -> int:
    print(f"ferrocanary bench workload: not available in this build ({reason})", file=sys.stderr)
    return EXIT_MISSING


def _print_rows(payload: dict[str, Any]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console()

    def pct(x: float) -> str:
        return f"{100 * x:.1f}"

    def num(x: float | None) -> str:
        return "-" if x is None else f"{x:.0f}"

    schemes = list(dict.fromkeys(r["buckets"] for r in payload["rows"]))
    for scheme in schemes:
        rows = [r for r in payload["rows"] if r["buckets"] == scheme]
        runs = sorted({r["runs"] for r in rows})
        table = Table(
            title=f"buckets {scheme}, {'/'.join(map(str, runs))} runs a cell: rates in %, median minutes",
            box=box.SIMPLE,
            title_justify="left",
            pad_edge=False,
            collapse_padding=True,
        )
        for column in (
            "truth",
            "rps",
            "method",
            "promote",
            "rollback",
            "inconcl",
            "invalid",
            "median",
        ):
            if column == "method":
                table.add_column(column, justify="left", no_wrap=True, min_width=16)
            else:
                table.add_column(column, justify="right", no_wrap=True, min_width=len(column))
        for r in rows:
            table.add_row(
                f"{r['true_ratio']:.2f}", f"{r['rps']:g}", r["method"], pct(r["promote"]), pct(r["rollback"]),
                pct(r["inconclusive"]), pct(r["invalid"]), num(r["median_minutes"]),
            )  # fmt: skip
        console.print(table)
    for check in payload["criteria"]:
        mark = "[green]ok[/green]" if check["ok"] else "[red]FAIL[/red]"
        console.print(f"{mark} {check['name']}: {check['value']} (bound {check['bound']:.4g})")
    console.print(
        f"one evaluate() of 120 blocks x 130 buckets: {payload['evaluate_ms']:.2f} ms "
        f"({payload['evaluate_cpu_ms']:.2f} ms CPU)"
    )
    console.print(f"elapsed {payload['elapsed_seconds']:.0f} s with {payload['workers']} workers")


def run_judge(args: argparse.Namespace) -> int:
    import os

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ferrocanary.bench import judge

    if args.runs is not None and args.runs < 1:
        print("ferrocanary bench judge: --runs must be >= 1", file=sys.stderr)
        return 2
    cells = judge.plan(quick=args.quick, runs=args.runs)
    workers = args.workers or os.cpu_count() or 1
    started = time.perf_counter()
    columns = (TextColumn("judge bench"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("cells", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        rows = judge.run_grid(cells, seed=args.seed, workers=workers, progress=advance)
    elapsed = time.perf_counter() - started
    evaluate_ms, evaluate_cpu_ms = judge.evaluate_timing()
    payload = {
        "rows": rows,
        "criteria": judge.criteria(rows),
        "evaluate_ms": evaluate_ms,
        "evaluate_cpu_ms": evaluate_cpu_ms,
        "elapsed_seconds": elapsed,
        "workers": workers,
        "seed": args.seed,
        "quick": bool(args.quick),
    }
    if args.json:
        json.dump(payload, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        _print_rows(payload)
    return 0


def run_scale(args: argparse.Namespace) -> int:
    from ferrocanary.local import scale

    quick = bool(args.quick)
    options = scale.Options(
        canaries=args.canaries or (200 if quick else 100),
        minutes=6.0 if quick and args.minutes == 10.0 else args.minutes,
        interval_seconds=args.interval or (30 if quick else 60),
        rps=args.rps,
        spread_seconds=args.spread,
    )

    def say(message: str) -> None:
        print(f"[bench scale] {message}", file=sys.stderr, flush=True)

    figures = scale.run(options, progress=say)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{figures['canaries']} canaries, {figures['minutes']} minutes")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for key, value in figures.items():
            if not isinstance(value, dict):
                table.add_row(key, str(value))
        for key, value in figures["api_requests_per_second_by_call"].items():
            table.add_row(f"operator API requests/s: {key}", str(value))
        for key, value in figures["per_canary"].items():
            table.add_row(f"per canary: {key}", str(value))
        Console().print(table)
    return 0


def _fault_scenarios() -> list[str]:
    from ferrocanary.local import faults

    return list(faults.SCENARIOS)


FAULT_COLUMNS = (
    "scenario",
    "canaries",
    "correct",
    "double_promotions",
    "stuck",
    "promotions_without_data",
    "traffic_off_end_state",
    "max_rss_mb",
    "seconds",
)


def run_faults(args: argparse.Namespace) -> int:
    from ferrocanary.local import faults

    if args.canaries is not None and args.canaries < 1:
        print("ferrocanary bench faults: --canaries must be >= 1", file=sys.stderr)
        return 2
    options = faults.Options(
        quick=bool(args.quick),
        scenarios=tuple(args.scenario),
        canaries=args.canaries,
        parallel=args.parallel,
        seed=args.seed,
    )

    def say(message: str) -> None:
        print(f"[bench faults] {message}", file=sys.stderr, flush=True)

    try:
        figures = faults.run(options, progress=say)
    except ValueError as exc:
        print(f"ferrocanary bench faults: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="bench faults" + (" --quick" if args.quick else ""))
        for column in FAULT_COLUMNS:
            table.add_column(column.replace("_", " "), justify="left" if column == "scenario" else "right")
        for row in figures["scenarios"]:
            table.add_row(*(str(row[c]) for c in FAULT_COLUMNS))
        Console().print(table)
    bad = ("double_promotions", "stuck", "promotions_without_data", "traffic_off_end_state")
    clean = all(r["correct"] == r["canaries"] and not any(r[k] for k in bad) for r in figures["scenarios"])
    return 0 if clean else 1
