"""Entry point of the ``ferrocanary`` command: builds the argparse tree from the subcommand modules.

Each module named in ``COMMANDS`` exposes ``register(subparsers)``, which adds its parser and sets
``func`` (a callable taking the parsed namespace and returning an exit code). Modules keep their
heavy imports inside ``func`` so that ``ferrocanary --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

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
    try:
        return int(func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
