"""Synthetic canaries for the judge benchmark (STATISTICS.md, "The benchmark that keeps the judge honest").

Latency: 97% lognormal(ln 20 ms, 0.5) + 3% lognormal(ln 120 ms, 0.7); the candidate is true_ratio
times the baseline, so every quantile ratio equals true_ratio. Per-minute multiplicative noise,
common to both arms (sigma 0.3) and arm-specific (sigma 0.12). Requests are Poisson: the total rate
is 2 x rps (rps per arm at a 50/50 split) and the candidate gets its configured weight, stepping
5 -> 10 -> 25 -> 50% every 10 minutes. Bucket counts are drawn per block as one multinomial over
the bucket probabilities of the noisy mixture CDF (no per-request sampling).

CPU model: CPU seconds = requests x CPU per request x lognormal noise (common 0.1, arm 0.05) + a
small idle share per pod; the candidate needs ``candidate_cpu_ratio`` of the baseline's CPU per
request (0.5: throughput per CPU 2x, above the 1.5x target) and ``candidate_memory_ratio`` of its
memory, so cost per request lands near 0.5x (target 0.7x). These KPIs pass clearly at every latency
truth, which makes p99 the binding KPI: the grid measures the quantile test, the same thing the
peers judge. Errors are binomial at 0.2% in both arms, memory faults Poisson per pod-hour (0 by default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import special

from ferrocanary.judge import blocks

Float = NDArray[np.float64]

EPOCH = 1_735_689_600.0  # 2025-01-01T00:00:00Z

PROMETHEUS_DEFAULT = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def bucket_bounds(name: str) -> Float:
    """``default`` (Prometheus' client default buckets), or ``expG`` (G^k from 1 ms up to 30 s)."""
    if name == "default":
        return np.array(PROMETHEUS_DEFAULT)
    if name.startswith("exp"):
        factor = float(name[3:])
        count = math.ceil(math.log(30.0 / 0.001) / math.log(factor)) + 1
        return np.asarray(0.001 * factor ** np.arange(count), dtype=np.float64)
    raise ValueError(f"unknown bucket scheme {name!r} (default, exp1.25, exp1.1, ...)")


@dataclass(frozen=True)
class Scenario:
    """One cell of the grid."""

    true_ratio: float
    rps: float
    buckets: str = "exp1.1"
    minutes: int = 120
    steps: tuple[float, ...] = (5.0, 10.0, 25.0, 50.0)
    step_minutes: int = 10
    interval: float = 60.0
    common_sigma: float = 0.3
    arm_sigma: float = 0.12
    error_rate: float = 0.002
    candidate_error_ratio: float = 1.0
    cpu_per_request: float = 0.008
    candidate_cpu_ratio: float = 0.5
    idle_cores_per_pod: float = 0.001
    memory_per_pod: float = 300.0 * 2**20
    candidate_memory_ratio: float = 0.4
    candidate_fault_rate: float = 0.0  # per pod-hour
    traffic_skew: float = 1.0  # actual candidate share = configured x skew (sample-ratio mismatch)

    def weights(self) -> Float:
        """Configured candidate percent per block."""
        step = np.minimum(np.arange(self.minutes) // self.step_minutes, len(self.steps) - 1)
        return np.asarray(np.array(self.steps)[step], dtype=np.float64)


def mixture_cdf(log_x: Float) -> Float:
    """CDF of the latency mixture at log seconds."""
    return np.asarray(
        0.97 * special.ndtr((log_x - math.log(0.020)) / 0.5)
        + 0.03 * special.ndtr((log_x - math.log(0.120)) / 0.7),
        dtype=np.float64,
    )


@dataclass(frozen=True)
class Batch:
    """``runs`` simulated canaries of one scenario; arm axis: 0 = baseline, 1 = candidate."""

    scenario: Scenario
    bounds: Float
    weight: Float  # (J,)
    requests: Float  # (runs, J, 2)
    counts: Float  # (runs, J, 2, K)
    errors: Float
    cpu: Float
    memory: Float
    pods: Float
    faults: Float

    @property
    def runs(self) -> int:
        return int(self.requests.shape[0])

    def block_data(self, run: int) -> blocks.BlockData:
        """The judge's view of one run."""
        scn = self.scenario

        def arm(a: int) -> blocks.Arm:
            return blocks.Arm(
                requests=self.requests[run, :, a],
                errors=self.errors[run, :, a],
                counts=self.counts[run, :, a],
                cpu=self.cpu[run, :, a],
                memory=self.memory[run, :, a],
                pods=self.pods[run, :, a],
                faults=self.faults[run, :, a],
            )

        n = self.weight.shape[0]
        return blocks.BlockData(
            interval=scn.interval,
            bounds=self.bounds,
            start=EPOCH + scn.interval * np.arange(n, dtype=np.float64),
            weight=self.weight,
            baseline=arm(0),
            candidate=arm(1),
            missing=np.zeros((n, len(blocks.SIGNALS)), dtype=np.bool_),
        )


def simulate(scn: Scenario, runs: int, rng: np.random.Generator, bounds: Float | None = None) -> Batch:
    """Draw ``runs`` independent canaries of ``scn`` (``bounds`` overrides the scenario's bucket scheme)."""
    bounds = bucket_bounds(scn.buckets) if bounds is None else np.asarray(bounds, dtype=np.float64)
    weight = scn.weights()
    n_blocks = weight.shape[0]
    share_c = np.clip(weight / 100.0 * scn.traffic_skew, 0.0, 1.0)
    share = np.stack((1.0 - share_c, share_c), axis=1)  # (J, 2)
    mean_requests = 2.0 * scn.rps * scn.interval * share
    requests = rng.poisson(mean_requests, size=(runs, n_blocks, 2)).astype(np.float64)

    arm_ratio = np.array([0.0, math.log(scn.true_ratio)])
    log_scale = (
        rng.normal(0.0, scn.common_sigma, size=(runs, n_blocks, 1))
        + rng.normal(0.0, scn.arm_sigma, size=(runs, n_blocks, 2))
        + arm_ratio
    )
    cdf = mixture_cdf(np.log(bounds)[None, None, None, :] - log_scale[..., None])
    edges = np.concatenate((np.zeros((*cdf.shape[:-1], 1)), cdf, np.ones((*cdf.shape[:-1], 1))), axis=-1)
    probs = np.clip(np.diff(edges, axis=-1), 0.0, 1.0)
    probs /= probs.sum(axis=-1, keepdims=True)
    counts = rng.multinomial(requests.astype(np.int64), probs).astype(np.float64)

    error_p = np.array([scn.error_rate, min(1.0, scn.error_rate * scn.candidate_error_ratio)])
    errors = rng.binomial(requests.astype(np.int64), error_p).astype(np.float64)

    total_pods = 2.0 + 2.0 * scn.rps * scn.cpu_per_request / 0.5
    pods = np.broadcast_to(share * total_pods, (runs, n_blocks, 2)).copy()
    cpu_per_request = scn.cpu_per_request * np.array([1.0, scn.candidate_cpu_ratio])
    cpu_noise = rng.normal(0.0, 0.1, size=(runs, n_blocks, 1)) + rng.normal(
        0.0, 0.05, size=(runs, n_blocks, 2)
    )
    cpu = requests * cpu_per_request * np.exp(cpu_noise) + scn.idle_cores_per_pod * pods * scn.interval
    memory_per_pod = scn.memory_per_pod * np.array([1.0, scn.candidate_memory_ratio])
    memory = pods * memory_per_pod * np.exp(rng.normal(0.0, 0.02, size=(runs, n_blocks, 2)))
    fault_rate = np.array([0.0, scn.candidate_fault_rate])
    faults = rng.poisson(fault_rate * pods * scn.interval / 3600.0).astype(np.float64)
    return Batch(scn, bounds, weight, requests, counts, errors, cpu, memory, pods, faults)
