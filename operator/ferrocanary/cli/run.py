"""``ferrocanary run``: start the operator (kopf) in this process.

ferrocanary run                          watch RustCanaries in every namespace
ferrocanary run --namespace shop -n web  only these namespaces
ferrocanary run --metrics-port 9102      also serve the operator's /metrics
ferrocanary run --peering ferrocanary    several replicas, one active (kopf peering)
ferrocanary run --shard-selector ferrocanary.io/shard=a   only canaries with this label (sharding)

Uses the in-cluster service account, else $KUBECONFIG. The CLI never imports kopf itself (an
import-linter contract): the handlers package is loaded by name and its ``run()`` called.
"""

from __future__ import annotations

import argparse
import importlib
import os
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the operator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch this namespace (repeatable)",
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch every namespace (the default)"
    )
    parser.add_argument(
        "--metrics-port", type=int, default=None, metavar="P", help="serve /metrics on this port"
    )
    parser.add_argument(
        "--metrics-address",
        default=None,
        metavar="ADDR",
        help="bind /metrics to this address (default 0.0.0.0)",
    )
    parser.add_argument(
        "--peering",
        default=None,
        metavar="NAME",
        help="coordinate replicas through this kopf peering object (default: standalone)",
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=None,
        metavar="N",
        help="this replica's peering priority: the highest-priority replica acts, the others wait",
    )
    parser.add_argument(
        "--shard-selector",
        default=None,
        metavar="SEL",
        help="only RustCanaries whose labels match (key=value,key); installations with disjoint "
        "selectors or namespaces never handle the same canary",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every tick")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.shard_selector is not None:  # read when the handlers module registers them: set it first
        os.environ["FERROCANARY_SHARD_SELECTOR"] = args.shard_selector
    handlers = importlib.import_module("ferrocanary.handlers")
    code: int = handlers.run(
        namespaces=() if args.all_namespaces else tuple(args.namespace),
        metrics_port=args.metrics_port,
        metrics_address=args.metrics_address,
        peering=args.peering,
        priority=args.priority,
        verbose=args.verbose,
    )
    return code
