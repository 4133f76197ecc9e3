"""``kubectl ferrocanary``: see and steer RustCanaries the kubectl way (the ``kubectl-ferrocanary`` plugin).

  kubectl ferrocanary get [NAME] [-o wide|json|yaml|name] [-A]   verdict, and every KPI's estimate,
                                                                 interval, target, reading and ETA
  kubectl ferrocanary promote|abort|pause|resume NAME [--wait]   ask the operator to act
  kubectl ferrocanary report|analyze ...                         `ferrocanary report|analyze`

Flags as in kubectl: -n/--namespace (default: the context's namespace), --context, --kubeconfig
(default: $KUBECONFIG, then ~/.kube/config). The four actions set the annotation
``ferrocanary.io/action``; the operator acts on its next tick, records ``status.lastAction`` and
clears the annotation. Errors say what is wrong and exit 1 (2 for a usage error).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ferrocanary import __version__
from ferrocanary.kube import canaries
from ferrocanary.policy.state import TERMINAL, Phase

ACTIONS = ("promote", "abort", "pause", "resume")
DELEGATED = ("report", "analyze")
RESOURCE = f"{canaries.PLURAL}.{canaries.GROUP}"
READING_STYLES = {"Pass": "green", "Miss": "red", "Open": "yellow", "NoData": "dim"}
PHASE_STYLES = {
    Phase.PROMOTED.value: "green",
    Phase.ROLLED_BACK.value: "red",
    Phase.INVALID.value: "red",
    Phase.INCONCLUSIVE.value: "yellow",
    Phase.PAUSED.value: "magenta",
    Phase.WAITING_PROMOTION.value: "yellow",
}
_TIMEOUT = (5, 30)  # connect, read (seconds): a dead cluster must not hang the terminal


class PluginError(Exception):
    """Something the user can fix; the message says what (printed as ``error: ...``)."""


# ----------------------------------------------------------------------------------------- formatting


def number(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    if value != 0 and (abs(value) >= 1000 or abs(value) < 0.01):
        return f"{value:.3g}"
    return f"{value:.2f}"


def interval(item: Mapping[str, Any]) -> str:
    low, high = item.get("lower"), item.get("upper")
    if low is None and high is None:
        return "-"
    return f"[{'-inf' if low is None else number(low)}, {'inf' if high is None else number(high)}]"


def target(item: Mapping[str, Any]) -> str:
    if item.get("target") is None:
        return "-"
    return f"{'>=' if item.get('direction') == 'higher' else '<='} {number(item['target'])}"


def duration(seconds: Any) -> str:
    """Durations as kubectl prints ages (its HumanDuration): 90s, 4m10s, 42m, 5h12m, 30h, 3d4h, 20d."""
    if not isinstance(seconds, int | float) or math.isnan(seconds) or seconds < 0:
        return "-"
    s = round(seconds)
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if s < 600:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def age(stamp: Any, now: datetime | None = None) -> str:
    if not isinstance(stamp, str) or not stamp:
        return "-"
    then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return duration(((now or datetime.now(UTC)) - then).total_seconds())


def _styled(text: str, style: str | None) -> str:
    return f"[{style}]{text}[/{style}]" if style else text


def _table(columns: Sequence[str]) -> Any:
    from rich.table import Table

    # kubectl's look: no borders, upper-case headers, three spaces between columns.
    table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 3, 0, 0), header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def list_table(items: Sequence[Mapping[str, Any]], *, wide: bool, all_namespaces: bool) -> Any:
    columns = ["NAME", "PHASE", "WEIGHT", "VERDICT", "P99 RATIO", "AGE"]
    columns = (
        (["NAMESPACE"] if all_namespaces else []) + columns + (["STEP", "DECISION", "REASON"] if wide else [])
    )
    table = _table(columns)
    for obj in items:
        meta, status = obj.get("metadata", {}), obj.get("status") or {}
        phase = str(status.get("phase", "Pending"))
        weights = ((obj.get("spec") or {}).get("steps") or {}).get("weights") or []
        row = [
            str(meta.get("name", "")),
            _styled(phase, PHASE_STYLES.get(phase)),
            f"{status['weight']}%" if status.get("weight") is not None else "-",
            str(status.get("verdict") or "-"),
            str(status.get("p99Ratio") or "-"),
            age(meta.get("creationTimestamp")),
        ]
        if all_namespaces:
            row.insert(0, str(meta.get("namespace", "")))
        if wide:
            step = status.get("stepIndex")
            row += [
                f"{step + 1}/{len(weights)}" if isinstance(step, int) and step >= 0 else "-",
                str(status.get("decision") or "-"),
                str(status.get("decisionReason") or "-"),
            ]
        table.add_row(*row)
    return table


def kpi_table(title: str, items: Sequence[Mapping[str, Any]], *, wide: bool) -> Any:
    columns = [title, "ESTIMATE", "INTERVAL", "TARGET", "DECISION", "ETA 50%", "ETA 80%"]
    table = _table(columns + (["DETAIL"] if wide else []))
    for item in items:
        reading = str(item.get("decision") or "-")
        row = [
            str(item.get("name", "")),
            number(item.get("estimate")),
            interval(item),
            target(item),
            _styled(reading, READING_STYLES.get(reading)),
            duration(item.get("eta50Seconds")),
            duration(item.get("eta80Seconds")),
        ]
        table.add_row(*(row + ([str(item.get("detail") or "")] if wide else [])))
    return table


def detail_lines(obj: Mapping[str, Any], now: datetime | None = None) -> list[str]:
    """The header of ``get NAME``: where the canary stands and why, one fact a line."""
    meta, spec, status = obj.get("metadata", {}), obj.get("spec") or {}, obj.get("status") or {}
    phase = str(status.get("phase", "Pending"))
    weights = (spec.get("steps") or {}).get("weights") or []
    step = status.get("stepIndex")
    steps = " ".join(f"[{w}]" if i == step else str(w) for i, w in enumerate(weights))
    weight = f"{status['weight']}% on the Rust build" if status.get("weight") is not None else "-"
    lines = [
        f"Name:        {meta.get('name', '')}",
        f"Namespace:   {meta.get('namespace', '')}",
        f"Phase:       {_styled(phase, PHASE_STYLES.get(phase))}",
        f"Weight:      {weight}  (steps: {steps or '-'})",
        f"Decision:    {status.get('decision') or '-'}: {status.get('decisionReason') or 'no analysis yet'}",
        f"Verdict:     {status.get('verdict') or '-'}"
        + (f": {status['verdictReason']}" if status.get("verdictReason") else ""),
        f"Started:     {status.get('startedAt') or '-'} ({age(status.get('startedAt'), now)} ago);"
        f" last analysis {age(status.get('lastTickAt'), now)} ago on {status.get('blocksUsed', 0)} blocks",
    ]
    cost = status.get("cost") or {}
    if cost.get("baselineMonthly") is not None and cost.get("candidateMonthly") is not None:
        saving = cost.get("savingFraction")
        python, rust = cost["baselineMonthly"], cost["candidateMonthly"]
        lines.append(
            f"Cost:        Python ${python:,.2f}/month, Rust ${rust:,.2f}/month"
            + (f" (saving {saving:.1%})" if isinstance(saving, int | float) else "")
        )
    action = status.get("lastAction") or {}
    if action:
        lines.append(f"Last action: {action.get('action')} at {action.get('at')}: {action.get('result', '')}")
    pending = (meta.get("annotations") or {}).get(canaries.ACTION_ANNOTATION)
    if pending:
        lines.append(f"Pending:     {pending} (waiting for the operator)")
    return lines


def conditions_table(status: Mapping[str, Any], now: datetime | None = None) -> Any:
    table = _table(["CONDITION", "STATUS", "REASON", "AGE", "MESSAGE"])
    for c in status.get("conditions") or []:
        table.add_row(
            str(c.get("type")),
            str(c.get("status")),
            str(c.get("reason", "")),
            age(c.get("lastTransitionTime"), now),
            str(c.get("message", "")),
        )
    return table


# ----------------------------------------------------------------------------------------- the cluster


class Cluster:
    """RustCanaries through the kubernetes client, for one kubeconfig context and namespace."""

    def __init__(self, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
        from kubernetes import client
        from kubernetes import config as _config
        from kubernetes.config.config_exception import ConfigException

        config: Any = _config  # the loaders carry no annotations
        try:
            api = config.new_client_from_config(config_file=kubeconfig, context=context)
            contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)
        except (ConfigException, OSError) as exc:
            where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
            raise PluginError(f"no usable cluster configuration in {where}: {exc}") from None
        chosen = next((c for c in contexts if c["name"] == context), current) if context else current
        self.host = str(api.configuration.host)
        self.namespace = namespace or (chosen or {}).get("context", {}).get("namespace") or "default"
        self.api = client.CustomObjectsApi(api)

    @contextlib.contextmanager
    def _errors(self, name: str = "") -> Iterator[None]:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            yield
        except ApiException as exc:
            raise PluginError(self._explain(exc, name)) from None
        except HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise PluginError(
                f"cannot reach the cluster at {self.host}: {reason}. Is it running, and are --context "
                "and --kubeconfig right?"
            ) from None

    def _explain(self, exc: Any, name: str) -> str:
        try:
            body = json.loads(exc.body or "{}")
        except ValueError:
            body = {}
        message = body.get("message") or exc.reason
        if exc.status == 404 and name and (body.get("details") or {}).get("name") == name:
            return (
                f'rustcanary "{name}" not found in namespace "{self.namespace}" '
                f"(`kubectl ferrocanary get -n {self.namespace}` lists them)"
            )
        if exc.status == 404:
            return (
                f'the server doesn\'t have a resource type "{canaries.PLURAL}": install the RustCanary CRD '
                "(kubectl apply -f crds/rustcanaries.ferrocanary.io.yaml, or helm install charts/ferrocanary)"
            )
        if exc.status in (401, 403):
            return f"not allowed: {message}"
        return f"the API server refused the request (HTTP {exc.status}): {message}"

    def get(self, name: str) -> dict[str, Any]:
        with self._errors(name):
            obj: Any = self.api.get_namespaced_custom_object(
                canaries.GROUP,
                canaries.VERSION,
                self.namespace,
                canaries.PLURAL,
                name,
                _request_timeout=_TIMEOUT,
            )
        return dict(obj)

    def list_all(self, all_namespaces: bool) -> list[dict[str, Any]]:
        with self._errors():
            found: Any
            if all_namespaces:
                found = self.api.list_cluster_custom_object(
                    canaries.GROUP, canaries.VERSION, canaries.PLURAL, _request_timeout=_TIMEOUT
                )
            else:
                found = self.api.list_namespaced_custom_object(
                    canaries.GROUP,
                    canaries.VERSION,
                    self.namespace,
                    canaries.PLURAL,
                    _request_timeout=_TIMEOUT,
                )
        items: list[dict[str, Any]] = found.get("items", [])
        return sorted(items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    def annotate(self, name: str, action: str) -> dict[str, Any]:
        body = {"metadata": {"annotations": {canaries.ACTION_ANNOTATION: action}}}
        with self._errors(name):
            obj: Any = self.api.patch_namespaced_custom_object(
                canaries.GROUP,
                canaries.VERSION,
                self.namespace,
                canaries.PLURAL,
                name,
                body,
                _content_type="application/merge-patch+json",
                _request_timeout=_TIMEOUT,
            )
        return dict(obj)


# ----------------------------------------------------------------------------------------- commands


def _print(renderable: Any) -> None:
    from rich.console import Console

    if sys.stdout.isatty():
        Console(highlight=False).print(renderable)
        return
    # Piped (scripts, tests): whole lines without colour or the padding of the last column.
    console = Console(highlight=False, width=250, no_color=True, color_system=None)
    with console.capture() as captured:
        console.print(renderable)
    print("\n".join(line.rstrip() for line in captured.get().splitlines()))


def _dump(data: Any, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        import yaml

        print(yaml.safe_dump(data, sort_keys=False), end="")


def cmd_get(args: argparse.Namespace, cluster: Cluster) -> int:
    if args.name:
        obj = cluster.get(args.name)
        if args.output in ("json", "yaml"):
            _dump(obj, args.output)
        elif args.output == "name":
            print(f"{RESOURCE}/{args.name}")
        else:
            status = obj.get("status") or {}
            wide = args.output == "wide"
            sections = ["\n".join(detail_lines(obj)), kpi_table("KPI", status.get("kpis") or [], wide=wide)]
            if status.get("guards"):
                sections.append(kpi_table("GUARD RAIL", status["guards"], wide=wide))
            if status.get("conditions"):
                sections.append(conditions_table(status))
            for i, section in enumerate(sections):
                if i:
                    print()
                _print(section)
        return 0
    items = cluster.list_all(args.all_namespaces)
    if args.output in ("json", "yaml"):
        _dump({"apiVersion": "v1", "kind": "List", "items": items}, args.output)
    elif args.output == "name":
        for obj in items:
            print(f"{RESOURCE}/{obj['metadata']['name']}")
    elif not items:
        where = "any namespace" if args.all_namespaces else f"{cluster.namespace} namespace"
        print(f"No resources found in {where}.", file=sys.stderr)
    else:
        _print(list_table(items, wide=args.output == "wide", all_namespaces=args.all_namespaces))
    return 0


def cmd_action(args: argparse.Namespace, cluster: Cluster) -> int:
    obj = cluster.get(args.name)
    phase = str((obj.get("status") or {}).get("phase", Phase.PENDING.value))
    if phase in {p.value for p in TERMINAL}:
        raise PluginError(
            f'rustcanary "{args.name}" is {phase}: it has ended, there is nothing to {args.command}'
        )
    cluster.annotate(args.name, args.command)
    print(f"{RESOURCE}/{args.name} {args.command} requested ({canaries.ACTION_ANNOTATION}={args.command})")
    if args.wait is None:
        print(
            "the operator acts on its next tick; `kubectl ferrocanary get` shows the outcome", file=sys.stderr
        )
        return 0
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        time.sleep(0.5)
        obj = cluster.get(args.name)
        if canaries.ACTION_ANNOTATION not in (obj["metadata"].get("annotations") or {}):
            status = obj.get("status") or {}
            result = (status.get("lastAction") or {}).get("result", "done")
            print(f"{RESOURCE}/{args.name} {args.command}: {result}; phase {status.get('phase', '-')}")
            return 0
    raise PluginError(
        f"the operator has not acted on {args.command} within {args.wait:g}s: is it running? "
        f"(the annotation stays, so it acts when it is back)"
    )


def split_delegated(argv: Sequence[str]) -> tuple[list[str], str, list[str]] | None:
    """(kubectl flags, command, the command's own arguments) when argv runs ``report``/``analyze``.

    Split by hand, not by argparse, so that everything after the command (its ``--help`` too) reaches
    the delegate verbatim and in order.
    """
    flags: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in DELEGATED:
            return flags, arg, list(argv[i + 1 :])
        if arg in ("-n", "--namespace", "--context", "--kubeconfig") and i + 1 < len(argv):
            flags += argv[i : i + 2]
            i += 2
        elif arg.split("=", 1)[0] in ("--namespace", "--context", "--kubeconfig"):
            flags.append(arg)
            i += 1
        else:
            return None
    return None


def cmd_delegate(args: argparse.Namespace, command: str, rest: list[str]) -> int:
    """Hand ``report``/``analyze`` to the ferrocanary command of that name, forwarding kubectl's flags."""
    module_name = f"ferrocanary.cli.{command}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise PluginError(
            f"this ferrocanary ({__version__}) has no `ferrocanary {command}` command: upgrade it "
            f"(pip install -U ferrocanary); `kubectl ferrocanary get NAME` shows the verdict meanwhile"
        ) from None
    parser = argparse.ArgumentParser(prog="kubectl ferrocanary")
    subparsers = parser.add_subparsers(dest="command")
    module.register(subparsers)
    accepts = subparsers.choices[command]._option_string_actions
    forwarded: list[str] = []
    if args.context:
        if "--context" not in accepts:
            raise PluginError(
                f"`ferrocanary {command}` has no --context: use `kubectl config use-context` or --kubeconfig"
            )
        forwarded += ["--context", args.context]
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig  # for delegates that read only the environment
        if "--kubeconfig" in accepts:
            forwarded += ["--kubeconfig", args.kubeconfig]
    if "--namespace" in accepts and not {"-n", "--namespace"} & {a.split("=", 1)[0] for a in rest}:
        # The delegate's own default is "default"; kubectl's is the context's namespace.
        namespace = args.namespace or _context_namespace(args.kubeconfig, args.context)
        if namespace:
            forwarded += ["--namespace", namespace]
    delegated = parser.parse_args([command, *forwarded, *rest])
    func: Callable[[argparse.Namespace], int] = delegated.func
    return int(func(delegated))


def _context_namespace(kubeconfig: str | None, context: str | None) -> str | None:
    try:
        return Cluster(kubeconfig, context, None).namespace
    except PluginError:
        return None  # no kubeconfig: the delegate reports that itself if it needs a cluster


# ----------------------------------------------------------------------------------------- parsing


def _kubectl_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    """kubectl's connection flags, accepted before and after the subcommand."""
    parser.add_argument("-n", "--namespace", default=default, help="namespace (default: the context's)")
    parser.add_argument("--context", default=default, help="kubeconfig context")
    parser.add_argument("--kubeconfig", default=default, help="kubeconfig file (default: $KUBECONFIG)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl ferrocanary", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
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


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    delegated = split_delegated(argv)
    args = parser.parse_args(delegated[0] + [delegated[1]] if delegated else argv)
    try:
        if delegated:
            return cmd_delegate(args, delegated[1], delegated[2])
        cluster = Cluster(args.kubeconfig, args.context, args.namespace)
        if args.command == "get":
            return cmd_get(args, cluster)
        return cmd_action(args, cluster)
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `| head`: the reader left, which is not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
