"""Prices from OpenCost: what a vCPU-hour and a GiB-hour cost on the nodes each build's pods run on.

OpenCost exports a price per node, labelled ``node`` (and ``instance``, ``instance_type``,
``region``...): ``node_cpu_hourly_cost`` (per vCPU) and ``node_ram_hourly_cost`` (per GiB).
kube-state-metrics' ``kube_pod_info`` says which node each pod is on (``node``), so each build's price
is the mean over its pods of their node's price: a build whose pods sit on cheaper nodes is priced
lower, as the bill would. Pods on nodes OpenCost does not price drop out; when either build has no
priced pod, or the series are absent, the static ``spec.analysis.pricing`` stays in force.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from ferrocanary.metrics import queries

#: signal -> OpenCost's per-node price series and the key the recording keeps it under.
SERIES: Mapping[str, tuple[str, str]] = {
    "cpu": ("node_cpu_hourly_cost", "cpuHour"),
    "memory": ("node_ram_hourly_cost", "memoryGiBHour"),
}
SOURCE = "opencost"

Prices = dict[str, dict[str, float]]  # arm -> {"cpuHour": $, "memoryGiBHour": $}


def price_query(series: str, pod_selector: str) -> str:
    """Mean over the arm's pods of the price ``series`` of the node each pod runs on."""
    pods = f"kube_pod_info{queries.matchers(pod_selector)}"
    return f"avg({pods} * on (node) group_left () max by (node) ({series}))"


def arm_queries(pod_selectors: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """signal -> arm -> query, for each arm's kube-state-metrics (pod) selector."""
    return {
        signal: {arm: price_query(series, selector) for arm, selector in pod_selectors.items()}
        for signal, (series, _key) in SERIES.items()
    }


def read(
    answer: Callable[[Mapping[str, str]], Mapping[str, float | None]], pod_selectors: Mapping[str, str]
) -> Prices:
    """Each arm's prices, or ``{}`` unless OpenCost priced both arms for both CPU and memory.

    ``answer`` runs one query per arm (arm -> query) and returns arm -> value (None: no result).
    """
    prices: Prices = {arm: {} for arm in pod_selectors}
    for signal, by_arm in arm_queries(pod_selectors).items():
        key = SERIES[signal][1]
        for arm, value in answer(by_arm).items():
            if value is None or not math.isfinite(value) or value < 0:
                return {}
            prices[arm][key] = float(value)
    complete = all(len(p) == len(SERIES) for p in prices.values())
    return prices if complete and prices else {}
