"""A two-arm service model: latency distribution, CPU and memory per build, in the metrics contract's terms.

Latency is a lognormal mixture (a 97% body and a 3% slow tail six times slower), the candidate a
scaled copy of the baseline when it is faster. ``block`` gives the expected per-bucket counts for a
number of requests (deterministic, for recordings in unit tests); the exporter process draws random
counts from the same probabilities for live exposition. Buckets are the contract's: 0.0005 * 1.1**k
up to the first bound >= 10 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ferrocanary.model import recording


def contract_bounds() -> tuple[float, ...]:
    bounds: list[float] = []
    k = 0
    while True:
        bound = 0.0005 * 1.1**k
        bounds.append(bound)
        if bound >= 10.0:
            return tuple(bounds)
        k += 1


BOUNDS = contract_bounds()


@dataclass(frozen=True)
class ArmModel:
    """One build: median latency (s), the tail mixture, CPU seconds per request, resident memory."""

    median_seconds: float
    cpu_per_request: float
    memory_bytes: float
    sigma: float = 0.4
    tail_share: float = 0.03
    tail_factor: float = 6.0
    tail_sigma: float = 0.5
    error_rate: float = 0.001
    idle_cpu_per_second: float = 0.001

    def cdf(self, x: np.ndarray) -> np.ndarray:
        body = stats.lognorm.cdf(x, self.sigma, scale=self.median_seconds)
        tail = stats.lognorm.cdf(x, self.tail_sigma, scale=self.median_seconds * self.tail_factor)
        return np.asarray((1 - self.tail_share) * body + self.tail_share * tail)

    def bucket_probabilities(self, bounds: tuple[float, ...] = BOUNDS) -> np.ndarray:
        """Probability of each bucket (last = +Inf), summing to 1."""
        cumulative = np.append(self.cdf(np.asarray(bounds)), 1.0)
        return np.diff(np.concatenate(([0.0], cumulative)))

    def block(
        self, requests: float, interval: float, pods: float = 1.0, faults: float = 0.0
    ) -> recording.ArmBlock:
        """Expected signals of one block with ``requests`` requests."""
        counts = requests * self.bucket_probabilities()
        return recording.ArmBlock(
            requests=requests,
            errors=requests * self.error_rate,
            latency_counts=tuple(float(c) for c in counts),
            cpu_seconds=requests * self.cpu_per_request + pods * self.idle_cpu_per_second * interval,
            memory_bytes=self.memory_bytes * pods,
            pods=pods,
            faults=faults,
        )


#: The Python build of the reference service, and Rust builds that win, miss p99, or regress.
PYTHON = ArmModel(median_seconds=0.020, cpu_per_request=0.004, memory_bytes=180e6)
RUST_WIN = ArmModel(median_seconds=0.007, cpu_per_request=0.0012, memory_bytes=60e6)  # p99 0.35x, 3.3x/CPU
RUST_P99_MISS = ArmModel(median_seconds=0.019, cpu_per_request=0.0012, memory_bytes=60e6)  # p99 0.95x


def quantile(model: ArmModel, q: float) -> float:
    """The model's q-quantile (bisection on the CDF; for test assertions and docs)."""
    lo, hi = 1e-6, 100.0
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if model.cdf(np.asarray([mid]))[0] < q:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi)
