"""Injected faults of the Rust build, read from the environment (all off by default).

TEXTSCORE_FAULT selects one:

- ``slow``: the hot path also burns TEXTSCORE_FAULT_SLOW_NS_PER_FEATURE nanoseconds per feature
  (default 1000, more than the Python build's whole cost per feature, about 700 ns here), so
  the Rust build ends up no faster and no cheaper than the Python one; with
  TEXTSCORE_FAULT_SLOW_RATE below 1 (default 1) only that fraction of requests is slowed: a tail
  regression, where p99 misses its target while the median stays fast;
- ``crash``: the process dies by SIGSEGV (or SIGABRT with TEXTSCORE_FAULT_CRASH_SIGNAL=abort) on
  request TEXTSCORE_FAULT_CRASH_AFTER (default 100);
- ``leak``: TEXTSCORE_FAULT_LEAK_KIB per request (default 1024) is never freed;
- ``panic``: a fraction TEXTSCORE_FAULT_PANIC_RATE of requests (default 0.05) panics in Rust.

They simulate defects of the new Rust code, so the Python build refuses them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

KINDS = ("none", "slow", "crash", "leak", "panic")


class FaultConfigError(ValueError):
    """The fault variables are malformed or do not apply to this build."""


@dataclass(frozen=True)
class FaultConfig:
    kind: str = "none"
    slow_ns_per_feature: int = 1000
    slow_rate: float = 1.0
    crash_after: int = 100
    crash_signal: str = "segv"
    leak_kib: int = 1024
    panic_rate: float = 0.05

    def describe(self) -> str:
        details = {
            "none": "",
            "slow": f" ({self.slow_ns_per_feature} ns per feature on {self.slow_rate:.0%} of requests)",
            "crash": f" (SIG{self.crash_signal.upper()} on request {self.crash_after})",
            "leak": f" ({self.leak_kib} KiB per request)",
            "panic": f" (rate {self.panic_rate})",
        }
        return f"{self.kind}{details[self.kind]}"


def _number(
    env: Mapping[str, str], name: str, *, default: float, cast: type, low: float, high: float
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise FaultConfigError(f"{name}={raw!r} is not a {cast.__name__}") from None
    if not low <= value <= high:
        raise FaultConfigError(f"{name}={raw} is outside [{low}, {high}]")
    return value  # type: ignore[no-any-return]


def from_env(env: Mapping[str, str] | None = None) -> FaultConfig:
    env = os.environ if env is None else env
    kind = env.get("TEXTSCORE_FAULT", "").strip().lower() or "none"
    if kind not in KINDS:
        raise FaultConfigError(f"TEXTSCORE_FAULT={kind!r}: expected one of {', '.join(KINDS)}")
    signal = env.get("TEXTSCORE_FAULT_CRASH_SIGNAL", "segv").strip().lower() or "segv"
    if signal not in ("segv", "abort"):
        raise FaultConfigError(f"TEXTSCORE_FAULT_CRASH_SIGNAL={signal!r}: expected segv or abort")
    return FaultConfig(
        kind=kind,
        slow_ns_per_feature=int(
            _number(env, "TEXTSCORE_FAULT_SLOW_NS_PER_FEATURE", default=1000, cast=int, low=0, high=10**9)
        ),
        slow_rate=float(
            _number(env, "TEXTSCORE_FAULT_SLOW_RATE", default=1.0, cast=float, low=0.0, high=1.0)
        ),
        crash_after=int(
            _number(env, "TEXTSCORE_FAULT_CRASH_AFTER", default=100, cast=int, low=1, high=2**62)
        ),
        crash_signal=signal,
        leak_kib=int(_number(env, "TEXTSCORE_FAULT_LEAK_KIB", default=1024, cast=int, low=0, high=2**30)),
        panic_rate=float(
            _number(env, "TEXTSCORE_FAULT_PANIC_RATE", default=0.05, cast=float, low=0.0, high=1.0)
        ),
    )


def apply(config: FaultConfig, build: str) -> None:
    """Arms the fault in the native module (the rust build), or refuses it (the python build)."""
    if config.kind == "none":
        if build == "rust":
            import textscore_native  # noqa: PLC0415

            textscore_native.set_fault("none")
        return
    if build != "rust":
        raise FaultConfigError(f"TEXTSCORE_FAULT={config.kind} applies to the rust build only")
    import textscore_native  # noqa: PLC0415

    textscore_native.set_fault(
        config.kind,
        after=config.crash_after,
        rate=config.slow_rate if config.kind == "slow" else config.panic_rate,
        leak_bytes=config.leak_kib * 1024,
        slow_ns_per_feature=config.slow_ns_per_feature,
        signal=config.crash_signal,
    )
