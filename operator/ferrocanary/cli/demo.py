"""``ferrocanary demo``: a full canary of the reference workload on this machine, with a live view.

    ferrocanary demo                        the promote scenario, realistic minutes
    ferrocanary demo --quick                10-second blocks: a verdict within minutes
    ferrocanary demo --scenario regression  Rust build slowed down: rolls back naming p99 latency
    ferrocanary demo --scenario crash       Rust build segfaulting (exit 139): rolls back on the memory fault
    ferrocanary demo --scenario oom         Rust build leaking under a memory limit: rolls back on OOMKilled
    ferrocanary demo --nodes kwok           kwok's fake node, the builds as local processes (no root)
    ferrocanary demo --quick --json --record canary.json

--nodes auto (the default) runs the workload as real pods on the sandbox's real node (containerd,
the kubelet, kube-state-metrics; the operator in-cluster from its image, installed by the Helm
chart) when it can: as root, with the real node's parts built (`make setup` builds them), and no
other sandbox holding this machine's real node. Otherwise it says why and runs on kwok.
See ferrocanary.local.demo for what runs and what stands in for what.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ferrocanary.cli.tables import cell, printable
from ferrocanary.model import formatting

_err = Console(stderr=True)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run a full canary of the reference workload on a local sandbox",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scenario", choices=("promote", "regression", "crash", "oom"), default="promote")
    parser.add_argument(
        "--nodes",
        choices=("auto", "real", "kwok"),
        default="auto",
        help="real pods on a real node, or kwok's fake node (default: %(default)s: real where it can run)",
    )
    parser.add_argument("--quick", action="store_true", help="10-second blocks (minutes, not an hour)")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON at the end")
    parser.add_argument(
        "--record", type=Path, metavar="FILE", help="save the canary's blocks (recording format)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("reports"), help="report directory (default: %(default)s)"
    )
    parser.add_argument(
        "--rate", type=float, default=60.0, help="requests per second sent (default: %(default)s)"
    )
    parser.add_argument("--sandbox", default="demo", help="sandbox name (default: %(default)s)")
    parser.set_defaults(func=_run)


def _progress(started: float, message: str) -> None:
    """A step as it starts, with the time since the command started (where the minutes go)."""
    _err.print(f"  {time.monotonic() - started:4.0f}s  {message}")


def _eta(seconds: Any) -> str:
    return formatting.minutes(seconds, decimals=1)


def canary_view(obj: dict[str, Any], elapsed: float, extra: str = "") -> Group:
    """Phase, weight and every KPI's interval against its target, as a person reads them."""
    status = obj.get("status") or {}
    head = Text.assemble(
        ("phase ", "dim"), (str(status.get("phase", "Pending")), "bold"),
        ("   weight ", "dim"), (f"{status.get('weight', 0)}% on Rust", "bold"),
        ("   decision ", "dim"), (str(status.get("decision", "-")), "bold"),
        ("   elapsed ", "dim"), (f"{elapsed / 60:.1f} min", "bold"),
    )  # fmt: skip
    table = Table(expand=False)
    for column in ("KPI", "estimate", "interval", "target", "reading", "ETA50", "ETA80"):
        table.add_column(column, justify="left" if column in {"KPI", "reading"} else "right")
    colours = {"Pass": "green", "Miss": "red", "Open": "yellow", "NoData": "dim"}
    for kpi in [*status.get("kpis", []), *status.get("guards", [])]:
        sign = formatting.relation(kpi.get("direction"), otherwise=">=")
        low, high = formatting.significant(kpi.get("lower")), formatting.significant(kpi.get("upper"))
        interval = f"[{low}, {high}]" if kpi.get("lower") is not None else "-"
        reading = str(kpi.get("decision", "-"))
        table.add_row(
            cell(kpi.get("name")),
            formatting.significant(kpi.get("estimate")),
            interval,
            f"{sign} {formatting.significant(kpi.get('target'))}",
            cell(reading, colours.get(reading)),
            _eta(kpi.get("eta50Seconds")),
            _eta(kpi.get("eta80Seconds")),
        )
    reason = cell(status.get("verdictReason") or status.get("decisionReason") or "waiting for data", "italic")
    return Group(head, table, reason, Text(extra, style="dim"))


def _report(run: Any, obj: dict[str, Any], out: Path, record: Path | None) -> Path | None:
    """Write the report (and the recording); a failure here is reported but never hides the verdict."""
    from ferrocanary.metrics import protocol
    from ferrocanary.model import recording
    from ferrocanary.report import source

    try:
        rec = source.canary_recording(run.api, obj)
    except (ValueError, protocol.MetricsUnavailableError) as exc:
        _err.print(f"[yellow]no report: the canary's blocks could not be fetched: {exc}[/yellow]")
        return None
    if record:
        recording.dump(rec, record)
        _err.print(f"recording saved: {record} (replay: ferrocanary analyze --recording {record})")
    try:
        return source.render_report(obj, rec, out)
    except Exception as exc:  # the verdict stands without its report; say what went wrong
        _err.print(f"[yellow]the report could not be written: {type(exc).__name__}: {exc}[/yellow]")
        return None


def _run(args: argparse.Namespace) -> int:
    from ferrocanary.local import demo

    scenario = demo.SCENARIOS[args.scenario]
    timing = demo.QUICK if args.quick else demo.REALISTIC
    started = time.monotonic()
    _err.print(f"[bold]ferrocanary demo[/bold]: {scenario.description}; expecting {scenario.expected_phase}")
    try:
        nodes, why = demo.choose_nodes(args.nodes, args.sandbox)
        _err.print(f"  nodes: {nodes} ({why})")
        progress = functools.partial(_progress, started)
        with demo.running(
            scenario, timing, args.rate, progress, sandbox_name=args.sandbox, nodes=nodes
        ) as run:
            obj: dict[str, Any] = {}
            with Live(console=_err, refresh_per_second=2, transient=False) as live:
                deadline = time.monotonic() + timing.deadline_seconds
                while time.monotonic() < deadline:
                    obj = run.canary()
                    phase = (obj.get("status") or {}).get("phase", "Pending")
                    load = f"load: {run.load.sent} sent, {run.load.errors} failed; namespace {run.namespace}"
                    live.update(canary_view(obj, time.monotonic() - run.started, load))
                    if phase in demo.TERMINAL_PHASES:
                        break
                    time.sleep(1.0)
            if not _err.is_terminal:  # rich's Live leaves its last line unterminated in a log file
                _err.line()
            status = obj.get("status") or {}
            phase = str(status.get("phase", "Pending"))
            progress(f"{phase}: writing the report")
            report_path = _report(run, obj, args.out / run.namespace, args.record)
    except (TimeoutError, ValueError, RuntimeError) as exc:
        _err.print(f"[red]demo failed:[/red] {exc}")
        return 1
    reason = str(status.get("verdictReason") or "")
    seconds = round(time.monotonic() - started, 1)
    if args.json:
        print(json.dumps({"verdict": phase, "reason": reason, "kpis": status.get("kpis", []),
                          "report": str(report_path) if report_path else None, "seconds": seconds,
                          "nodes": nodes}, indent=2))  # fmt: skip
    else:
        colour = "green" if phase == "Promoted" else "red"
        # The reason is the operator's text, printed literally (not as markup), numbers highlighted.
        _err.print(_err.highlighter(Text.assemble((phase, f"bold {colour}"), ": ", printable(reason))))
        _err.print(f"report: {report_path or 'not written'}   ({seconds / 60:.1f} min)")
    return 0 if phase == scenario.expected_phase else 3
