"""Which build scores the requests: the pure-Python hot path or the Rust one (textscore_native).

The rest of the service (HTTP, validation, metrics) is the same code for both, so any difference
the canary measures comes from the hot path alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textscore import __version__, pyscore

BUILDS = ("python", "rust")


class HotPathPanicError(Exception):
    """The Rust hot path panicked; the panic was caught at the pyo3 boundary."""


@dataclass(frozen=True)
class Engine:
    build: str  # "python" | "rust"
    version: str  # the service's version
    native: str  # the Rust crate's "version+profile", or "none"
    score_batch: Callable[[list[str]], list[float]]


def python_engine() -> Engine:
    return Engine("python", __version__, "none", pyscore.score_batch)


def rust_engine() -> Engine:
    import textscore_native  # noqa: PLC0415 (only the rust build needs the extension)

    info = textscore_native.build_info()

    def score_batch(texts: list[str]) -> list[float]:
        try:
            return textscore_native.score_batch(texts)
        except textscore_native.NativePanicError as exc:
            raise HotPathPanicError(str(exc)) from exc

    return Engine("rust", __version__, f"{info['crate_version']}+{info['profile']}", score_batch)


def load(build: str) -> Engine:
    """The engine of a build, warmed up (tables and weights loaded before the first request)."""
    if build == "python":
        engine = python_engine()
    elif build == "rust":
        engine = rust_engine()
    else:
        raise ValueError(f"build must be one of {', '.join(BUILDS)}, not {build!r}")
    engine.score_batch(["warm up the tables and weights"])
    return engine
