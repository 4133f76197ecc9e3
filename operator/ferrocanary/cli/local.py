"""``ferrocanary local``: build, start, inspect and stop the one-machine sandbox.

ferrocanary local build [--json]   build the toolchain, showing each component (first time: 10-20 min)
ferrocanary local images [--json]  build the operator and textscore images from their Dockerfiles
                                   (root; cached by a hash of their inputs; `up --nodes real` imports them)
ferrocanary local up [--name N] [--nodes kwok|real]
                                   start etcd, the control plane, the nodes, Prometheus (idempotent)
eval "$(ferrocanary local env)"    KUBECONFIG, PROMETHEUS_URL and PATH for this shell
ferrocanary local status [--json]  each component's health
ferrocanary local down [--name N]  stop every process by pid, remove the state (harmless twice)
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from ferrocanary.cli.local_build import reporter_for, summary
from ferrocanary.local import imagebuild, processes
from ferrocanary.local.sandbox import Sandbox, SandboxError
from ferrocanary.local.toolchain import BuildRecord, Toolchain, ToolchainError

_err = Console(stderr=True)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "local",
        help="a real control plane and Prometheus on this machine",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    build = actions.add_parser("build", help="build and cache the toolchain (idempotent)")
    build.add_argument(
        "--json",
        action="store_true",
        help="print each component (version, directory, cached, seconds) as JSON on stdout",
    )
    build.add_argument(
        "--nodes",
        choices=("kwok", "real"),
        default="real",
        help="real (the default): every component, a real node's too (what `make setup` builds). "
        "kwok: only what a sandbox of kwok's fake nodes runs (skips the kubelet, containerd, "
        "kube-state-metrics, Prometheus with Kubernetes discovery, the Debian base, buildah)",
    )
    build.set_defaults(func=_build)

    images = actions.add_parser(
        "images", help="build the project's images from its Dockerfiles with buildah (root; cached)"
    )
    images.add_argument(
        "--json",
        action="store_true",
        help="print each image (reference, archive, cached, seconds) as JSON on stdout",
    )
    images.set_defaults(func=_images)

    up = actions.add_parser("up", help="start a sandbox (builds the toolchain first if needed)")
    _name(up)
    up.add_argument("--apiserver-port", type=int, help="fixed port for kube-apiserver (default: a free one)")
    up.add_argument("--prometheus-port", type=int, help="fixed port for Prometheus (default: a free one)")
    up.add_argument(
        "--nodes",
        choices=("kwok", "real"),
        default="kwok",
        help="kwok: fake nodes, pods run nothing (light; many canaries at once). real: one real node "
        "(containerd, kubelet, kube-proxy, kube-state-metrics; root; one per machine). Default: %(default)s",
    )
    up.set_defaults(func=_up)

    env = actions.add_parser("env", help="print shell exports for a running sandbox")
    _name(env)
    env.set_defaults(func=_env)

    status = actions.add_parser("status", help="show each component's health")
    _name(status)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_status)

    down = actions.add_parser("down", help="stop a sandbox and remove its state")
    _name(down)
    down.set_defaults(func=_down)


def _name(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default="default", help="sandbox name (default: %(default)s)")


def ensure_toolchain(toolchain: Toolchain, every: bool = False, nodes: str = "real") -> list[BuildRecord]:
    """Build whatever ``nodes`` needs that is missing, showing each component as it goes; return
    what was done.

    With nothing missing this is silent (``up`` on a built machine) unless ``every`` asks for
    the list of cached components (``build``, which the user runs to see exactly that).
    """
    if not every and not toolchain.missing(nodes):
        return []
    with reporter_for(_err) as reporter:
        return toolchain.ensure(reporter, nodes=nodes)


def _build(args: argparse.Namespace) -> int:
    try:
        toolchain = Toolchain()
        records = ensure_toolchain(toolchain, every=True, nodes=args.nodes)
    except ToolchainError as exc:
        _err.print(f"[red]build failed:[/red] {exc}")
        return 1
    if args.json:
        print(
            json.dumps(
                {
                    "built": [r.name for r in records if not r.cached],
                    "seconds": round(sum(r.seconds for r in records), 1),
                    "components": {r.name: r.to_json() for r in records},
                },
                indent=2,
            )
        )
    else:
        _err.print(
            summary(records, toolchain.components[0].directory.parent), highlight=False, soft_wrap=True
        )
    return 0


def _images(args: argparse.Namespace) -> int:
    try:
        toolchain = Toolchain()
        ensure_toolchain(toolchain)
        builder = imagebuild.ImageBuilder(toolchain)
        with _err.status("checking the images") as spinner:
            built = builder.ensure(progress=lambda message: _progress(spinner, message))
    except (ToolchainError, imagebuild.ImageBuildError) as exc:
        _err.print(f"[red]images did not build:[/red] {exc}")
        return 1
    if args.json:
        print(json.dumps({b.name: b.to_json() for b in built}, indent=2))
    else:
        for b in built:
            how = "cached" if b.cached else f"built in {b.seconds:.0f}s"
            _err.print(f"{b.reference}  {how}  {b.archive}", highlight=False, soft_wrap=True)
    return 0


def _progress(spinner: Any, message: str) -> None:
    """A finished step stays on the terminal (with its time); the step under way is the spinner's."""
    if message.startswith("built "):
        _err.print(message, highlight=False, soft_wrap=True)
    spinner.update(message)


def _up(args: argparse.Namespace) -> int:
    ports = {k: v for k, v in (("apiserver", args.apiserver_port), ("prometheus", args.prometheus_port)) if v}
    try:
        sandbox = Sandbox(args.name, nodes=args.nodes)
        if sandbox.is_up():
            _err.print(f"sandbox {args.name!r} is already up; nothing to do")
            return 0
        ensure_toolchain(sandbox.toolchain, nodes=args.nodes)
        with _err.status("starting the sandbox") as spinner:
            sandbox.up(lambda message: _progress(spinner, message), ports=ports)
    except (SandboxError, ToolchainError, processes.ComponentError) as exc:
        _err.print(f"[red]sandbox {args.name!r} did not start:[/red] {exc}")
        return 1
    _err.print(
        f"sandbox {args.name!r} is up: apiserver {sandbox.apiserver_url}, Prometheus {sandbox.prometheus_url}"
    )
    _err.print(f'use it with: eval "$(ferrocanary local env --name {args.name})"')
    return 0


def _env(args: argparse.Namespace) -> int:
    sandbox = Sandbox(args.name)
    try:
        variables = sandbox.env()
    except SandboxError as exc:
        _err.print(f"[red]{exc}[/red]")
        return 1
    for key, value in variables.items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def _status(args: argparse.Namespace) -> int:
    sandbox = Sandbox(args.name)
    status = sandbox.status()
    if args.json:
        print(json.dumps({"name": args.name, "up": sandbox.is_up(), "components": status}, indent=2))
        return 0 if sandbox.is_up() else 1
    if not status:
        _err.print(f"sandbox {args.name!r} is not up")
        return 1
    table = Table(title=f"sandbox {args.name}")
    table.add_column("component")
    table.add_column("health")
    table.add_column("log")
    state = sandbox.load_state()
    for name, health in status.items():
        colour = {"healthy": "green", "unhealthy": "yellow"}.get(health, "red")
        log = state.components[name].log if state else ""
        table.add_row(name, f"[{colour}]{health}[/{colour}]", log)
    Console().print(table)
    if sandbox.is_up():
        Console().print(f"apiserver {sandbox.apiserver_url}   Prometheus {sandbox.prometheus_url}")
    return 0 if sandbox.is_up() else 1


def _down(args: argparse.Namespace) -> int:
    existed = Sandbox(args.name).down()
    print(f"sandbox {args.name!r} {'stopped and removed' if existed else 'was not up'}", file=sys.stderr)
    return 0
