"""``ferrocanary report NAME``: a Markdown verdict report with plots for one RustCanary.

    ferrocanary report textscore -n shop               writes reports/shop-textscore/report.md
    ferrocanary report textscore -n shop --out /tmp/r  elsewhere
    ferrocanary report textscore -n shop --record r.json   also save the blocks (recording format)

The blocks are fetched again from the canary's Prometheus for the window it analysed, and the
judge's look after every block is replayed, so the plots show the intervals the decision used.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write a verdict report (Markdown and plots) for a RustCanary",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", help="the RustCanary's name")
    parser.add_argument("-n", "--namespace", default="default")
    parser.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG, then ~/.kube/config")
    parser.add_argument(
        "--out", type=Path, default=None, help="directory (default: reports/<namespace>-<name>)"
    )
    parser.add_argument("--record", type=Path, default=None, metavar="FILE", help="also save the recording")
    parser.add_argument("--json", action="store_true", help="print the report's path and verdict as JSON")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ferrocanary.kube import client, rest
    from ferrocanary.metrics import protocol
    from ferrocanary.model import recording
    from ferrocanary.report import source

    api = client.connect(args.kubeconfig)
    path = f"/apis/ferrocanary.io/v1alpha1/namespaces/{args.namespace}/rustcanaries/{args.name}"
    try:
        obj = api.get(path)
    except rest.NotFoundError:
        print(f"error: RustCanary {args.namespace}/{args.name} not found", file=sys.stderr)
        return 1
    except rest.KubeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = args.out or Path("reports") / f"{args.namespace}-{args.name}"
    try:
        report, rec = source.write_report(api, obj, out)
    except (ValueError, protocol.MetricsUnavailableError) as exc:
        print(f"error: cannot build the report: {exc}", file=sys.stderr)
        return 1
    if args.record:
        recording.dump(rec, args.record)
    status = obj.get("status") or {}
    if args.json:
        print(json.dumps({"report": str(report), "verdict": status.get("phase"), "blocks": len(rec.blocks)}))
    else:
        print(report)
    return 0
