"""The evidence of each custom KPI (``spec.analysis.metrics.kpis``), as blocks the judge already reads.

A custom KPI is judged by the same judge as the built-in ones, on a recording of its own that puts
its series where a built-in KPI of the same shape looks (``policy.custom_kpis`` says which):

- ``ratio``: the numerator counter as ``cpu_seconds`` and the denominator counter as ``requests``,
  so the cost-per-request statistic (a ratio of sums per arm, on the log scale, with its HAC
  variance and confidence sequence) is numerator/denominator. Memory is zero, so the price of
  memory does not enter it, and the denominator is what the sample-ratio check reads: it should
  grow with the traffic (requests, bytes served), as a per-request KPI's does;
- ``quantile``: the histogram's per-bucket counts as the latency, the arm's own requests, CPU,
  memory and pods as they are, so the latency-quantile statistic and its bucket-resolution check
  apply to it.

Counters are read raw at block boundaries like every other counter; a block without the series is
listed as missing, so the KPI holds rather than passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ferrocanary.metrics import protocol, queries
from ferrocanary.model import recording

#: query -> per block index, per ``le`` ("" without one), the summed increase (the source's _counter)
Counter = Callable[[str], dict[int, dict[str, float]]]
BlockBuilder = Callable[
    [int, datetime, protocol.Window, Mapping[str, Mapping[str, Any]], tuple[float, ...]], recording.Block
]


def _le(value: str) -> float:
    return math.inf if value in ("+Inf", "Inf", "inf") else float(value)


def recordings(
    window: protocol.Window,
    counter: Counter,
    arms: Mapping[str, Mapping[str, Any]],
    starts: tuple[datetime, ...],
    block: BlockBuilder,
) -> dict[str, recording.Recording]:
    """Each custom KPI's recording; ``arms`` are the main fetch's signals per arm (keys as its own)."""
    out: dict[str, recording.Recording] = {}
    count = len(starts)
    for name, kpi in window.custom.items():
        derived = {arm: _arm(kpi, arm, counter, arms[arm], count) for arm in queries.ARMS}
        bounds = tuple(
            sorted({le for arm in derived.values() for b in arm["latency"].values() for le in b} - {math.inf})
        )
        blocks = tuple(block(k, start, window, derived, bounds) for k, start in enumerate(starts))
        out[name] = recording.Recording(window.interval_seconds, bounds, blocks)
    return out


def _arm(
    kpi: queries.CustomKpiQueries, arm: str, counter: Counter, main: Mapping[str, Any], count: int
) -> dict[str, Any]:
    def total(query: str) -> dict[int, float]:
        return {k: sum(v.values()) for k, v in counter(query).items()}

    quiet: dict[str, Any] = {"errors": {}, "panics": {}, "container_faults": {}}
    if kpi.kind == "ratio":
        return {
            **quiet,
            "requests": total(kpi.denominator[arm]),
            "cpu": total(kpi.numerator[arm]),
            # not read by a ratio; one empty bucket, because the judge expects at least one bound
            "latency": {k: {1.0: 0.0, math.inf: 0.0} for k in range(count)},
            "memory": dict.fromkeys(range(count), 0.0),
            "pods": main["pods"],
        }
    histogram = counter(kpi.histogram[arm])
    unit = kpi.unit_seconds
    return {
        **main,
        **quiet,
        "latency": {k: {_le(le) * unit: n for le, n in v.items()} for k, v in histogram.items()},
    }
