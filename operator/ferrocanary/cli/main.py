"""Entry point of the ``ferrocanary`` command: builds the argparse tree from the subcommand modules.

Each module named in ``COMMANDS`` exposes ``register(subparsers)``, which adds its parser and sets
``func`` (a callable taking the parsed namespace and returning an exit code). Modules keep their
heavy imports inside ``func`` so that ``ferrocanary --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from ferrocanary import __version__

COMMANDS: tuple[str, ...] = ("local", "run", "demo", "analyze", "report", "bench", "queries")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ferrocanary",
        description="Canary a Rust build against its Python build and prove the promised margins.",
    )
    parser.add_argument("--version", action="version", version=f"ferrocanary {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"ferrocanary.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_terminate) if main_thread else None
    try:
        return int(func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if main_thread:  # as it was, for a caller that runs commands in-process (the tests)
            signal.signal(signal.SIGTERM, previous)


def _exit_on_terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (a CI timeout, ``kill``) unwinds like Ctrl-C: each command's ``finally`` stops the
    processes it started. Python's default ended at once and left a benchmark's whole sandbox
    (etcd, the control plane, kwok, Prometheus) running. ``ferrocanary run`` is unaffected: kopf
    installs its own handler for a graceful stop."""
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
