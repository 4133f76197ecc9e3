"""Each build's figures over the newest judged block, as the judge read them, for status and dashboards.

Whatever the preset (the contract, Istio's or ingress-nginx's series, cAdvisor's), the source turns
the team's series into blocks; these figures are read off the newest block, so a dashboard that
shows them (``status.arms``, exported as ``ferrocanary_arm_*``) shows what the judge saw, in
seconds and dollars, without knowing which series they came from. A signal the block misses is
left out rather than shown as zero.
"""

from __future__ import annotations

import math

import numpy as np

from ferrocanary.judge import quantiles
from ferrocanary.model import analysis, recording

GIB = 1024.0**3
#: status.arms field -> what it is (the exported series' help texts say the same).
FIELDS = (
    "requestsPerSecond",
    "errorRatio",
    "p50Seconds",
    "p99Seconds",
    "cpuCores",
    "memoryBytes",
    "costPerRequest",
)


def _quantile(arm: recording.ArmBlock, bounds: tuple[float, ...], p: float) -> float:
    if not bounds:
        return math.nan
    counts = np.asarray(arm.latency_counts, dtype=np.float64)
    return float(quantiles.prometheus_quantile(counts, np.asarray(bounds, dtype=np.float64), p))


def _arm(
    arm: recording.ArmBlock,
    name: str,
    rec: recording.Recording,
    pricing: analysis.Pricing,
    missing: frozenset[str],
) -> dict[str, float]:
    interval = rec.interval_seconds
    requests = arm.requests if "requests" not in missing else math.nan
    cpu = arm.cpu_seconds if "cpu" not in missing else math.nan
    memory = arm.memory_bytes if "memory" not in missing else math.nan
    cpu_hour, memory_gib_hour = pricing.of(name)
    cost = cpu * cpu_hour / 3600.0 + memory / GIB * interval * memory_gib_hour / 3600.0
    latency = "latency" not in missing
    figures = {
        "requestsPerSecond": requests / interval,
        "errorRatio": arm.errors / requests if requests > 0 else math.nan,
        "p50Seconds": _quantile(arm, rec.latency_bucket_bounds, 0.5) if latency else math.nan,
        "p99Seconds": _quantile(arm, rec.latency_bucket_bounds, 0.99) if latency else math.nan,
        "cpuCores": cpu / interval,
        "memoryBytes": memory,
        "costPerRequest": cost / requests if requests > 0 else math.nan,
    }
    return {k: float(v) for k, v in figures.items() if math.isfinite(v)}


def arm_figures(rec: recording.Recording, settings: analysis.AnalysisSettings) -> dict[str, dict[str, float]]:
    """``status.arms``: per build, the figures of the newest block (``{}`` without blocks)."""
    if not rec.blocks:
        return {}
    block = rec.blocks[-1]
    missing = frozenset(block.missing)
    return {
        "baseline": _arm(block.baseline, "baseline", rec, settings.pricing, missing),
        "candidate": _arm(block.candidate, "candidate", rec, settings.pricing, missing),
    }
