"""The ``kubectl-ferrocanary`` entry point: kubectl's flags, the subcommands, and exit codes.

``USAGE`` is the help text; each subcommand lives in its own module (get, actions, delegate).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from ferrocanary import __version__
from ferrocanary.cli.plugin.actions import ACTIONS, cmd_action
from ferrocanary.cli.plugin.cluster import Cluster, PluginError
from ferrocanary.cli.plugin.delegate import DELEGATED, cmd_delegate, split_delegated
from ferrocanary.cli.plugin.get import cmd_get
from ferrocanary.cli.queries import resolve as resolve_queries
from ferrocanary.cli.queries import show as show_queries
from ferrocanary.cli.tables import printable

USAGE = """\
``kubectl ferrocanary``: see and steer RustCanaries the kubectl way (the ``kubectl-ferrocanary`` plugin).

  kubectl ferrocanary get [NAME] [-o wide|json|yaml|name] [-A]   verdict, and every KPI's estimate,
                                                                 interval, target, reading and ETA
  kubectl ferrocanary promote|abort|pause|resume NAME [--wait]   ask the operator to act
  kubectl ferrocanary queries NAME [--json]                      every PromQL the operator runs for it
  kubectl ferrocanary report|analyze ...                         `ferrocanary report|analyze`

Flags as in kubectl: -n/--namespace (default: the context's namespace), --context, --kubeconfig
(default: $KUBECONFIG, then ~/.kube/config). The four actions set the annotation
``ferrocanary.io/action``; the operator acts on its next tick, records ``status.lastAction`` and
clears the annotation. Errors say what is wrong and exit 1 (2 for a usage error).
"""


def _kubectl_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    """kubectl's connection flags, accepted before and after the subcommand."""
    parser.add_argument("-n", "--namespace", default=default, help="namespace (default: the context's)")
    parser.add_argument("--context", default=default, help="kubeconfig context")
    parser.add_argument("--kubeconfig", default=default, help="kubeconfig file (default: $KUBECONFIG)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl ferrocanary", description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"kubectl-ferrocanary {__version__}")
    _kubectl_flags(parser, None)
    common = argparse.ArgumentParser(add_help=False)
    _kubectl_flags(common, argparse.SUPPRESS)  # SUPPRESS: a flag given before the subcommand is kept
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    get = sub.add_parser("get", parents=[common], help="RustCanaries, or one with every KPI")
    get.add_argument("name", nargs="?", help="one RustCanary (all in the namespace when omitted)")
    get.add_argument("-o", "--output", choices=("wide", "json", "yaml", "name"), help="output format")
    get.add_argument("-A", "--all-namespaces", action="store_true", help="list across namespaces")
    queries = sub.add_parser("queries", parents=[common], help="every PromQL the operator runs for a canary")
    queries.add_argument("name", help="the RustCanary")
    queries.add_argument("--json", action="store_true", help="print the queries as JSON")
    for action in ACTIONS:
        act = sub.add_parser(action, parents=[common], help=f"ask the operator to {action} a canary")
        act.add_argument("name", help="the RustCanary")
        act.add_argument(
            "--wait",
            nargs="?",
            type=float,
            const=60.0,
            default=None,
            metavar="SECONDS",
            help="wait until the operator has acted (default 60 s)",
        )
    for name in DELEGATED:
        sub.add_parser(
            name, add_help=False, help=f"`ferrocanary {name}` (`kubectl ferrocanary {name} --help`)"
        )
    return parser


def cmd_queries(args: argparse.Namespace, cluster: Cluster) -> int:
    """Every PromQL the operator runs for one RustCanary in the cluster (as ``ferrocanary queries``)."""
    obj = cluster.get(args.name)
    templates = {}
    ref = ((obj.get("spec") or {}).get("analysis") or {}).get("metrics", {}).get("templateRef")
    if isinstance(ref, dict) and isinstance(ref.get("name"), str):
        where = ref.get("namespace") if isinstance(ref.get("namespace"), str) else None
        templates[ref["name"]] = cluster.metric_template(ref["name"], where)
    try:
        result = resolve_queries(obj, cluster.namespace, templates)
    except ValueError as exc:
        raise PluginError(f"{args.name}: {exc}") from None
    show_queries(result, as_json=args.json)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    delegated = split_delegated(argv)
    args = parser.parse_args(delegated[0] + [delegated[1]] if delegated else argv)
    try:
        if delegated:
            return cmd_delegate(args, delegated[1], delegated[2])
        cluster = Cluster(args.kubeconfig, args.context, args.namespace)
        command = {"get": cmd_get, "queries": cmd_queries}.get(args.command, cmd_action)
        return command(args, cluster)
    except PluginError as exc:
        # The message can quote the API server, which quotes what a user sent it.
        print(f"error: {printable(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `| head`: the reader left, which is not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
