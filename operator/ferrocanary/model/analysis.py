"""Analysis settings: which KPIs are judged against which targets, at what confidence, for how long.

Parsed from a RustCanary's ``spec.analysis`` (camelCase keys, as in the CRD). Every key is optional;
the defaults (the README and docs/statistics.md list them): p99 latency <= 0.60x, requests per CPU-second
>= 1.50x, cost per request <= 0.70x, zero memory faults, and guard rails on the error rate and the
p50 latency. Bad values raise ValueError naming the field (e.g. ``spec.analysis.kpis[1].target``)
so the operator can put the message straight into the resource's status.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, TypeVar


class Direction(StrEnum):
    """Which side of the target is better for the candidate."""

    LOWER = "lower"
    HIGHER = "higher"


class KpiKind(StrEnum):
    """What a KPI measures (the ``type`` key in the spec)."""

    LATENCY_QUANTILE = "latencyQuantile"
    THROUGHPUT_PER_CPU = "throughputPerCpu"
    COST_PER_REQUEST = "costPerRequest"
    MEMORY_FAULTS = "memoryFaults"


class GuardKind(StrEnum):
    """What a guard rail measures (the ``type`` key in the spec)."""

    ERROR_RATE = "errorRate"
    LATENCY_QUANTILE = "latencyQuantile"


_DIRECTION_OF: dict[KpiKind, Direction] = {
    KpiKind.LATENCY_QUANTILE: Direction.LOWER,
    KpiKind.THROUGHPUT_PER_CPU: Direction.HIGHER,
    KpiKind.COST_PER_REQUEST: Direction.LOWER,
    KpiKind.MEMORY_FAULTS: Direction.LOWER,
}

# A frozen dataclass cannot compute a default from another field, so a sentinel marks "derive it".
_DERIVED: Any = None


@dataclass(frozen=True)
class KpiTarget:
    """One improvement target. Ratios are candidate/baseline; memory faults: the allowed fault count."""

    name: str
    kind: KpiKind
    target: float
    quantile: float | None = None
    direction: Direction = _DERIVED  # derived from kind when not given

    def __post_init__(self) -> None:
        if self.direction is None:
            object.__setattr__(self, "direction", _DIRECTION_OF[self.kind])
        if self.kind is KpiKind.LATENCY_QUANTILE and (self.quantile is None or not 0.0 < self.quantile < 1.0):
            raise ValueError(f"KPI {self.name}: quantile must be in (0, 1), got {self.quantile!r}")
        if self.kind is KpiKind.MEMORY_FAULTS:
            if not (math.isfinite(self.target) and self.target >= 0):
                raise ValueError(f"KPI {self.name}: allowed fault count must be >= 0, got {self.target!r}")
        elif not (math.isfinite(self.target) and self.target > 0):
            raise ValueError(f"KPI {self.name}: target ratio must be > 0, got {self.target!r}")


# Non-inferiority margins per guard kind, chosen from the simulation in docs/recording.md ("Guard
# margins: the trade-off"): at 20 rps an error-rate margin of 1.0 lets a candidate with the
# baseline's error rate promote within maxDuration (95-100% of runs, bursts or not) while one with
# twice the rate is not promoted (0 of 200); 1.5 would save 5 minutes at 20 rps and let 8.5% of
# those through. A p50 margin of 0.1 tolerates no more than a 10% slower median.
DEFAULT_MARGINS: dict[GuardKind, float] = {GuardKind.ERROR_RATE: 1.0, GuardKind.LATENCY_QUANTILE: 0.1}
MAX_MARGIN = 10.0

# The error-rate guard's absolute non-inferiority floor: the candidate also counts as non-inferior
# when its error rate is shown below the baseline's + this (a rate: 0.001 = 0.1 percentage point).
# A ratio alone cannot be shown when neither arm has errors; with none the floor is shown after
# about ln(6/alpha)/floor candidate requests (4,800 at alpha 0.05), docs/recording.md.
DEFAULT_FLOOR = 0.001
MAX_FLOOR = 0.5


@dataclass(frozen=True)
class GuardRail:
    """A guard rail, two claims. Harm (rolls back): the candidate is worse than ``max_ratio`` x the
    baseline. Non-inferiority (needed to promote): the candidate is below
    ``max_ratio x (1 + margin)`` x the baseline (an error rate: or below the baseline's + ``floor``).
    Between the two nothing is decided."""

    name: str
    kind: GuardKind
    quantile: float | None = None
    max_ratio: float = 1.0
    margin: float = _DERIVED  # derived from kind when not given (DEFAULT_MARGINS)
    floor: float = DEFAULT_FLOOR  # errorRate: non-inferior also below the baseline's rate + floor

    @property
    def promote_below(self) -> float:
        """The ratio the candidate must be shown to stay under before a promotion."""
        return self.max_ratio * (1.0 + self.margin)

    def __post_init__(self) -> None:
        if self.margin is None:
            object.__setattr__(self, "margin", DEFAULT_MARGINS[self.kind])
        if not (math.isfinite(self.margin) and 0.0 < self.margin <= MAX_MARGIN):
            raise ValueError(
                f"guard {self.name}: nonInferiorityMargin must be in (0, {MAX_MARGIN:g}], got {self.margin!r}"
            )
        if not (math.isfinite(self.floor) and 0.0 < self.floor <= MAX_FLOOR):
            raise ValueError(
                f"guard {self.name}: nonInferiorityFloor must be in (0, {MAX_FLOOR:g}], got {self.floor!r}"
            )
        if self.kind is GuardKind.LATENCY_QUANTILE and (
            self.quantile is None or not 0.0 < self.quantile < 1.0
        ):
            raise ValueError(f"guard {self.name}: quantile must be in (0, 1), got {self.quantile!r}")
        if not (math.isfinite(self.max_ratio) and self.max_ratio > 0):
            raise ValueError(f"guard {self.name}: maxRatio must be > 0, got {self.max_ratio!r}")


@dataclass(frozen=True)
class Pricing:
    """List prices for the cost KPI and the monthly projection (defaults: a common on-demand price)."""

    cpu_hour: float = 0.04048  # $ per vCPU-hour
    memory_gib_hour: float = 0.004445  # $ per GiB-hour
    monthly_requests: float | None = None  # None: project from the observed total request rate
    # Where the prices come from: "static" (the two fields above, the spec's or the defaults) or
    # "opencost" (each build's own, from the OpenCost prices of the nodes its pods run on, in ``arms``).
    source: str = "static"
    arms: tuple[tuple[str, float, float], ...] = ()  # (arm, $ per vCPU-hour, $ per GiB-hour)

    def of(self, arm: str) -> tuple[float, float]:
        """``arm``'s ($ per vCPU-hour, $ per GiB-hour)."""
        for name, cpu_hour, memory_gib_hour in self.arms:
            if name == arm:
                return cpu_hour, memory_gib_hour
        return self.cpu_hour, self.memory_gib_hour


def with_prices(settings: AnalysisSettings, prices: Mapping[str, Mapping[str, float]]) -> AnalysisSettings:
    """The settings with each build priced from OpenCost when ``prices`` (a recording's: arm ->
    ``cpuHour``, ``memoryGiBHour``) holds both builds, else as they are (the static ``pricing``)."""
    if not all(arm in prices for arm in ("baseline", "candidate")):
        return settings
    arms = tuple((arm, float(p["cpuHour"]), float(p["memoryGiBHour"])) for arm, p in sorted(prices.items()))
    return replace(settings, pricing=replace(settings.pricing, source="opencost", arms=arms))


DEFAULT_KPIS: tuple[KpiTarget, ...] = (
    KpiTarget("p99-latency", KpiKind.LATENCY_QUANTILE, 0.60, quantile=0.99),
    KpiTarget("throughput-per-cpu", KpiKind.THROUGHPUT_PER_CPU, 1.50),
    KpiTarget("cost-per-request", KpiKind.COST_PER_REQUEST, 0.70),
    KpiTarget("memory-faults", KpiKind.MEMORY_FAULTS, 0.0),
)

DEFAULT_GUARDS: tuple[GuardRail, ...] = (
    GuardRail("error-rate", GuardKind.ERROR_RATE),
    GuardRail("p50-latency", GuardKind.LATENCY_QUANTILE, quantile=0.50),
)


@dataclass(frozen=True)
class AnalysisSettings:
    """Everything the judge needs besides the data. Durations in seconds."""

    interval_seconds: float = 60.0
    warmup_seconds: float = 120.0  # dropped after every traffic weight change
    max_duration_seconds: float = 7200.0
    confidence: float = 0.95  # per KPI; promotion is an intersection-union test at this level
    guard_confidence: float = 0.99  # over all guard rails together (Bonferroni)
    min_blocks: int = 20  # J_min: no decision before this many usable blocks
    min_tail_count: int = 50  # observations above each quantile, per arm, before deciding on it
    max_bucket_growth: float = 1.1  # largest bucket edge ratio tolerated across p50..p99.9
    # Relative slack of the sample-ratio check: the candidate's requests per unit of configured share
    # may differ from the baseline's by this factor either way before the split counts as broken.
    sample_ratio_tolerance: float = 0.1
    information_horizon_seconds: float = 1800.0  # where the confidence sequence is tightest
    kpis: tuple[KpiTarget, ...] = DEFAULT_KPIS
    guards: tuple[GuardRail, ...] = DEFAULT_GUARDS
    pricing: Pricing = field(default_factory=Pricing)

    def __post_init__(self) -> None:
        for name in ("confidence", "guard_confidence"):
            value = getattr(self, name)
            if not 0.5 <= value < 1.0:
                raise ValueError(f"{name} must be in [0.5, 1), got {value!r}")
        if self.interval_seconds <= 0 or self.max_duration_seconds <= 0 or self.warmup_seconds < 0:
            raise ValueError("interval and maxDuration must be > 0 and warmup >= 0")
        if self.max_bucket_growth <= 1.0:
            raise ValueError(f"max_bucket_growth must be > 1, got {self.max_bucket_growth!r}")
        if not 0.0 <= self.sample_ratio_tolerance <= 1.0:
            raise ValueError(f"sample_ratio_tolerance must be in [0, 1], got {self.sample_ratio_tolerance!r}")
        names = [k.name for k in self.kpis] + [g.name for g in self.guards]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"KPI and guard names must be unique: {', '.join(duplicates)}")


# Nothing a canary waits for is longer; far longer ones would overflow date arithmetic mid-tick.
_LONGEST_SECONDS = 366 * 86400.0
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: str | float | int, field: str = "duration") -> float:
    """Seconds from "90s", "1m", "2h", "1h30m", "250ms", or a plain number of seconds."""
    if isinstance(text, bool):
        raise ValueError(f"{field}: expected a duration, got {text!r}")
    if isinstance(text, int | float):
        seconds = float(text)
    elif isinstance(text, str):
        compact = text.strip()
        try:
            seconds = float(compact)
        except ValueError:
            parts = _DURATION_PART.findall(compact)
            if not parts or "".join(n + u for n, u in parts) != compact:
                raise ValueError(f"{field}: not a duration: {text!r} (use e.g. 90s, 1m, 1h30m)") from None
            scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
            seconds = sum(float(n) * scale[u] for n, u in parts)
    else:
        raise ValueError(f"{field}: expected a duration, got {type(text).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{field}: duration must be finite and >= 0, got {text!r}")
    if seconds > _LONGEST_SECONDS:
        raise ValueError(f"{field}: duration longer than a year: {text!r}")
    return seconds


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(float(value)):
        raise ValueError(f"{field}: expected a finite number, got {value!r}")
    return float(value)


def _quantile_from_name(name: str) -> float | None:
    match = re.fullmatch(r"p(\d+(?:\.\d+)?)(?:-.*)?", name)
    return float(match.group(1)) / 100.0 if match else None


_Kind = TypeVar("_Kind", KpiKind, GuardKind)


def _named_kind(data: Any, where: str, kinds: type[_Kind], what: str) -> tuple[str, _Kind]:
    """The ``name`` and ``type`` every KPI and guard entry carries, checked with the field named."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected an object")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}.name: required (a non-empty string)")
    try:
        kind = kinds(str(data.get("type")))
    except ValueError:
        known = ", ".join(k.value for k in kinds)
        raise ValueError(f"{where}.type: unknown {what} type {data.get('type')!r}; known: {known}") from None
    return name, kind


def _quantile(data: Mapping[str, Any], name: str, where: str) -> float:
    """A latencyQuantile entry's quantile: given, or read from a name like ``p99-latency``."""
    quantile = (
        _number(data["quantile"], f"{where}.quantile") if "quantile" in data else _quantile_from_name(name)
    )
    if quantile is None or not 0.0 < quantile < 1.0:
        raise ValueError(f"{where}.quantile: required in (0, 1) for type latencyQuantile, got {quantile!r}")
    return quantile


def _kpi(data: Any, where: str) -> KpiTarget:
    name, kind = _named_kind(data, where, KpiKind, "KPI")
    if "target" not in data:
        raise ValueError(f"{where}.target: required")
    target = _number(data["target"], f"{where}.target")
    quantile = _quantile(data, name, where) if kind is KpiKind.LATENCY_QUANTILE else None
    try:
        return KpiTarget(name, kind, target, quantile=quantile)
    except ValueError as exc:
        raise ValueError(f"{where}.target: {exc}") from None


def _guard(data: Any, where: str) -> GuardRail:
    name, kind = _named_kind(data, where, GuardKind, "guard")
    quantile = _quantile(data, name, where) if kind is GuardKind.LATENCY_QUANTILE else None
    max_ratio = _number(data.get("maxRatio", 1.0), f"{where}.maxRatio")
    if max_ratio <= 0:
        raise ValueError(f"{where}.maxRatio: must be > 0, got {max_ratio!r}")
    margin, floor = _margin(data, kind, where), _floor(data, where)
    return GuardRail(name, kind, quantile=quantile, max_ratio=max_ratio, margin=margin, floor=floor)


def _floor(data: Mapping[str, Any], where: str) -> float:
    """A guard's ``nonInferiorityFloor`` (an error rate): given, or DEFAULT_FLOOR."""
    if "nonInferiorityFloor" not in data:
        return DEFAULT_FLOOR
    floor = _number(data["nonInferiorityFloor"], f"{where}.nonInferiorityFloor")
    if not 0.0 < floor <= MAX_FLOOR:
        raise ValueError(f"{where}.nonInferiorityFloor: must be in (0, {MAX_FLOOR:g}], got {floor!r}")
    return floor


def _margin(data: Mapping[str, Any], kind: GuardKind, where: str) -> float:
    """A guard's ``nonInferiorityMargin``: given, or the default of its kind."""
    if "nonInferiorityMargin" not in data:
        return DEFAULT_MARGINS[kind]
    margin = _number(data["nonInferiorityMargin"], f"{where}.nonInferiorityMargin")
    if not 0.0 < margin <= MAX_MARGIN:
        raise ValueError(f"{where}.nonInferiorityMargin: must be in (0, {MAX_MARGIN:g}], got {margin!r}")
    return margin


def _list(value: Any, where: str) -> Sequence[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ValueError(f"{where}: expected a list")
    return value


def _pricing(data: Any, where: str) -> Pricing:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected an object")
    default = Pricing()
    cpu = _number(data.get("cpuHour", default.cpu_hour), f"{where}.cpuHour")
    mem = _number(data.get("memoryGiBHour", default.memory_gib_hour), f"{where}.memoryGiBHour")
    monthly = data.get("monthlyRequests")
    monthly_value = None if monthly is None else _number(monthly, f"{where}.monthlyRequests")
    for key, value in (("cpuHour", cpu), ("memoryGiBHour", mem), ("monthlyRequests", monthly_value)):
        if value is not None and value < 0:
            raise ValueError(f"{where}.{key}: must be >= 0, got {value!r}")
    return Pricing(cpu, mem, monthly_value)


def _durations(analysis: Mapping[str, Any], where: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, attr in (
        ("interval", "interval_seconds"),
        ("warmup", "warmup_seconds"),
        ("maxDuration", "max_duration_seconds"),
        ("informationHorizon", "information_horizon_seconds"),
    ):
        if key in analysis:
            values[attr] = parse_duration(analysis[key], f"{where}.{key}")
    for key, attr in (("interval", "interval_seconds"), ("maxDuration", "max_duration_seconds")):
        if values.get(attr, 1.0) <= 0:
            raise ValueError(f"{where}.{key}: must be > 0")
    return values


def _levels(analysis: Mapping[str, Any], where: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, attr in (("confidence", "confidence"), ("guardConfidence", "guard_confidence")):
        if key in analysis:
            level = _number(analysis[key], f"{where}.{key}")
            if not 0.5 <= level < 1.0:
                raise ValueError(f"{where}.{key}: must be in [0.5, 1), got {level!r}")
            values[attr] = level
    return values


def _counts(analysis: Mapping[str, Any], where: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, attr in (("minBlocks", "min_blocks"), ("minTailCount", "min_tail_count")):
        if key in analysis:
            count = _number(analysis[key], f"{where}.{key}")
            if count < 1 or count != int(count):
                raise ValueError(f"{where}.{key}: must be a positive integer, got {analysis[key]!r}")
            values[attr] = int(count)
    return values


def _resolution(analysis: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The bucket-growth limit and the sample-ratio tolerance: the data's own resolution checks."""
    values: dict[str, Any] = {}
    if "maxBucketGrowth" in analysis:
        growth = _number(analysis["maxBucketGrowth"], f"{where}.maxBucketGrowth")
        if growth <= 1.0:
            raise ValueError(f"{where}.maxBucketGrowth: must be > 1, got {growth!r}")
        values["max_bucket_growth"] = growth
    if "sampleRatioTolerance" in analysis:
        tolerance = _number(analysis["sampleRatioTolerance"], f"{where}.sampleRatioTolerance")
        if not 0.0 <= tolerance <= 1.0:
            raise ValueError(f"{where}.sampleRatioTolerance: must be in [0, 1], got {tolerance!r}")
        values["sample_ratio_tolerance"] = tolerance
    return values


def _targets(analysis: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The KPI and guard lists and the prices: each entry checked with its index in the field name."""
    values: dict[str, Any] = {}
    if "kpis" in analysis:
        items = _list(analysis["kpis"], f"{where}.kpis")
        if not items:
            # With no KPI a canary would promote on its guard rails alone: nothing proven.
            raise ValueError(f"{where}.kpis: needs at least one KPI")
        values["kpis"] = tuple(_kpi(item, f"{where}.kpis[{i}]") for i, item in enumerate(items))
    if "guards" in analysis:
        items = _list(analysis["guards"], f"{where}.guards")
        values["guards"] = tuple(_guard(item, f"{where}.guards[{i}]") for i, item in enumerate(items))
    if "pricing" in analysis:
        values["pricing"] = _pricing(analysis["pricing"], f"{where}.pricing")
    return values


def settings_from_spec(analysis: Mapping[str, Any] | None) -> AnalysisSettings:
    """AnalysisSettings from ``spec.analysis``; missing keys keep their defaults, unknown keys are ignored
    (the same object also carries the rollout policy's keys)."""
    where = "spec.analysis"
    if analysis is None:
        return AnalysisSettings()
    if not isinstance(analysis, Mapping):
        raise ValueError(f"{where}: expected an object")
    values: dict[str, Any] = {}
    for part in (_durations, _levels, _counts, _resolution, _targets):
        values.update(part(analysis, where))
    try:
        return AnalysisSettings(**values)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
