"""The recording format, version 1: what the judge sees of a canary, block by block.

A recording is the bucket bounds of the latency histogram plus a list of blocks (one analysis
interval each); every block holds, for the baseline and the candidate arm, the request and error
counts, the per-bucket latency counts (NOT cumulative; the last bucket is +Inf), CPU seconds, mean
memory working set, pod count and memory-fault events. Prometheus and file replay both produce it;
the judge never sees anything else. docs/recording.md and docs/recording.schema.json document it.

Validation is strict because a recording is the evidence behind a promotion: every error names
the block index and the field path, so a person can find the bad number.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

FORMAT = "ferrocanary.recording/v1"

#: Signal names a block may list under ``missing`` (no data for it this interval).
SIGNALS: tuple[str, ...] = ("requests", "errors", "latency", "cpu", "memory", "pods", "faults")

_ARM_NUMBERS: tuple[str, ...] = ("requests", "errors", "cpu_seconds", "memory_bytes", "pods", "faults")


class RecordingError(ValueError):
    """A malformed recording; ``block`` is the 0-based block index (None: top level), ``field`` the path."""

    def __init__(self, block: int | None, field: str, problem: str) -> None:
        self.block = block
        self.field = field
        self.problem = problem
        where = f"block {block}: {field}" if block is not None else field
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class ArmBlock:
    """One arm's signals over one block (counts are increases over the block)."""

    requests: float
    errors: float
    latency_counts: tuple[float, ...]  # per bucket, NOT cumulative, len(bounds)+1 (last = +Inf)
    cpu_seconds: float
    memory_bytes: float  # mean working set over the block, summed over the arm's pods
    pods: float
    faults: float  # OOMKills, exit 139/134, panics


@dataclass(frozen=True)
class Block:
    """One analysis interval of both arms."""

    start: datetime  # tz-aware UTC
    weight: float  # candidate's configured traffic percent at this block
    baseline: ArmBlock
    candidate: ArmBlock
    missing: tuple[str, ...] = ()  # signal names with no data this block (see SIGNALS)


@dataclass(frozen=True)
class Recording:
    """The whole evidence of one canary analysis."""

    interval_seconds: float
    latency_bucket_bounds: tuple[float, ...]  # finite upper bounds in seconds, ascending; +Inf implied
    blocks: tuple[Block, ...]
    # The RustCanary's spec.analysis the blocks were judged with (optional JSON key "analysis"), so a
    # recording alone reproduces the controller's verdict; None: judge with the defaults.
    analysis: Mapping[str, Any] | None = None
    # spec.analysis.metrics.kpis: each custom KPI's own evidence, as blocks the judge reads with that
    # KPI alone (ratio: numerator as cpu_seconds, denominator as requests; quantile: its histogram as
    # latency). Not written to the JSON form: a replay judges the built-in KPIs.
    custom: Mapping[str, Recording] = field(default_factory=dict)
    # Each build's prices from OpenCost (optional JSON key "prices": arm -> {"cpuHour": $ per
    # vCPU-hour, "memoryGiBHour": $ per GiB-hour}) at the window's end; empty: the spec's static prices.
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


def _number(value: Any, block: int | None, field: str, *, minimum: float | None = 0.0) -> float:
    # bool is an int in Python; a true/false in a count is always a mistake in the producer.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordingError(block, field, f"expected a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise RecordingError(block, field, f"expected a finite number, got {value!r}")
    if minimum is not None and number < minimum:
        raise RecordingError(block, field, f"must be >= {minimum:g}, got {number:g}")
    return number


def _mapping(value: Any, block: int | None, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RecordingError(block, field, f"expected an object, got {type(value).__name__}")
    return value


def _sequence(value: Any, block: int | None, field: str) -> Sequence[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise RecordingError(block, field, f"expected a list, got {type(value).__name__}")
    return value


def _require(data: Mapping[str, Any], key: str, block: int | None, prefix: str) -> Any:
    if key not in data:
        raise RecordingError(block, f"{prefix}{key}", "missing")
    return data[key]


def _arm(data: Any, block: int, name: str, n_buckets: int) -> ArmBlock:
    arm = _mapping(data, block, name)
    numbers = {
        key: _number(_require(arm, key, block, f"{name}."), block, f"{name}.{key}") for key in _ARM_NUMBERS
    }
    raw = _sequence(_require(arm, "latency_counts", block, f"{name}."), block, f"{name}.latency_counts")
    if len(raw) != n_buckets:
        raise RecordingError(
            block,
            f"{name}.latency_counts",
            f"expected {n_buckets} counts (one per bound plus +Inf), got {len(raw)}",
        )
    counts = tuple(_number(c, block, f"{name}.latency_counts[{i}]") for i, c in enumerate(raw))
    return ArmBlock(
        requests=numbers["requests"],
        errors=numbers["errors"],
        latency_counts=counts,
        cpu_seconds=numbers["cpu_seconds"],
        memory_bytes=numbers["memory_bytes"],
        pods=numbers["pods"],
        faults=numbers["faults"],
    )


def _start(value: Any, block: int) -> datetime:
    if not isinstance(value, str):
        raise RecordingError(block, "start", f"expected an RFC 3339 string, got {type(value).__name__}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise RecordingError(block, "start", f"not an RFC 3339 time: {value!r}") from None
    if moment.tzinfo is None:
        raise RecordingError(block, "start", f"needs a time zone (e.g. 'Z'): {value!r}")
    return moment.astimezone(UTC)


def _block(data: Any, index: int, n_buckets: int) -> Block:
    block = _mapping(data, index, "block")
    start = _start(_require(block, "start", index, ""), index)
    weight = _number(_require(block, "weight", index, ""), index, "weight")
    if weight > 100.0:
        raise RecordingError(index, "weight", f"a traffic percent must be <= 100, got {weight:g}")
    baseline = _arm(_require(block, "baseline", index, ""), index, "baseline", n_buckets)
    candidate = _arm(_require(block, "candidate", index, ""), index, "candidate", n_buckets)
    missing_raw = _sequence(block.get("missing", ()), index, "missing")
    for i, signal in enumerate(missing_raw):
        if signal not in SIGNALS:
            raise RecordingError(
                index, f"missing[{i}]", f"unknown signal {signal!r}; known: {', '.join(SIGNALS)}"
            )
    return Block(start, weight, baseline, candidate, tuple(str(s) for s in missing_raw))


def from_dict(data: Mapping[str, Any]) -> Recording:
    """Validate a decoded JSON recording; raises RecordingError naming block index and field."""
    top = _mapping(data, None, "recording")
    tag = _require(top, "format", None, "")
    if tag != FORMAT:
        raise RecordingError(None, "format", f"expected {FORMAT!r}, got {tag!r}")
    interval = _number(_require(top, "interval_seconds", None, ""), None, "interval_seconds")
    if interval <= 0:
        raise RecordingError(None, "interval_seconds", "must be > 0")
    raw_bounds = _sequence(_require(top, "latency_bucket_bounds", None, ""), None, "latency_bucket_bounds")
    if not raw_bounds:
        raise RecordingError(None, "latency_bucket_bounds", "needs at least one finite bound")
    bounds = tuple(_number(b, None, f"latency_bucket_bounds[{i}]") for i, b in enumerate(raw_bounds))
    if bounds[0] <= 0:
        raise RecordingError(None, "latency_bucket_bounds[0]", "latency bounds must be > 0 seconds")
    for i in range(1, len(bounds)):
        if bounds[i] <= bounds[i - 1]:
            raise RecordingError(
                None,
                f"latency_bucket_bounds[{i}]",
                f"bounds must be strictly ascending: {bounds[i]:g} after {bounds[i - 1]:g}",
            )
    raw_blocks = _sequence(_require(top, "blocks", None, ""), None, "blocks")
    blocks = tuple(_block(b, i, len(bounds) + 1) for i, b in enumerate(raw_blocks))
    for i in range(1, len(blocks)):
        if blocks[i].start <= blocks[i - 1].start:
            raise RecordingError(i, "start", f"blocks must be in time order; not after block {i - 1}")
    raw_analysis = top.get("analysis")
    settings = None if raw_analysis is None else dict(_mapping(raw_analysis, None, "analysis"))
    return Recording(interval, bounds, blocks, settings, prices=_prices(top.get("prices")))


def _prices(raw: Any) -> dict[str, dict[str, float]]:
    if raw is None:
        return {}
    prices: dict[str, dict[str, float]] = {}
    for arm in ("baseline", "candidate"):
        entry = _mapping(_require(_mapping(raw, None, "prices"), arm, None, "prices."), None, f"prices.{arm}")
        prices[arm] = {}
        for key in ("cpuHour", "memoryGiBHour"):
            value = _require(entry, key, None, f"prices.{arm}.")
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
                raise RecordingError(None, f"prices.{arm}.{key}", f"expected a price >= 0, got {value!r}")
            prices[arm][key] = float(value)
    return prices


def _num(value: float) -> float | int:
    # Counts are whole numbers: writing 12 rather than 12.0 keeps files small and readable.
    number = float(value)
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def _arm_dict(arm: ArmBlock) -> dict[str, Any]:
    return {
        "requests": _num(arm.requests),
        "errors": _num(arm.errors),
        "latency_counts": [_num(c) for c in arm.latency_counts],
        "cpu_seconds": _num(arm.cpu_seconds),
        "memory_bytes": _num(arm.memory_bytes),
        "pods": _num(arm.pods),
        "faults": _num(arm.faults),
    }


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a 'Z' suffix, as recordings carry it."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def to_dict(rec: Recording) -> dict[str, Any]:
    """The JSON-ready form of a recording (inverse of from_dict)."""
    blocks: list[dict[str, Any]] = []
    for block in rec.blocks:
        entry: dict[str, Any] = {
            "start": format_time(block.start),
            "weight": _num(block.weight),
            "baseline": _arm_dict(block.baseline),
            "candidate": _arm_dict(block.candidate),
        }
        if block.missing:
            entry["missing"] = list(block.missing)
        blocks.append(entry)
    data: dict[str, Any] = {
        "format": FORMAT,
        "interval_seconds": _num(rec.interval_seconds),
        "latency_bucket_bounds": list(rec.latency_bucket_bounds),
    }
    if rec.analysis is not None:
        data["analysis"] = dict(rec.analysis)
    if rec.prices:
        data["prices"] = {arm: dict(p) for arm, p in rec.prices.items()}
    data["blocks"] = blocks
    return data


def load(path: str | os.PathLike[str]) -> Recording:
    """Read and validate a recording file; invalid JSON is a RecordingError too."""
    with open(path, encoding="utf-8") as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as exc:
            raise RecordingError(None, "(file)", f"not valid JSON: {exc}") from None
    return from_dict(data)


def dumps(rec: Recording) -> str:
    """JSON text with one block per line: compact, and diffs show which block changed."""
    data = to_dict(rec)
    blocks = data.pop("blocks")
    head = json.dumps(data, allow_nan=False)[:-1]
    if not blocks:
        return head + ', "blocks": []}\n'
    body = ",\n  ".join(json.dumps(b, allow_nan=False) for b in blocks)
    return head + ', "blocks": [\n  ' + body + "\n]}\n"


def dump(rec: Recording, path: str | os.PathLike[str]) -> None:
    """Write a recording file (see ``dumps``)."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(dumps(rec))
