"""Synthetic canaries for the judge benchmark (docs/statistics.md, "The benchmark").

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

Production stressors (the simulator must not share the judge's assumptions), each
off by default and switched on alone by name through ``STRESSORS``; with all of them off the draws
are exactly those of the plain simulator, so recordings made from it do not change:

* common-drift: the common latency noise is AR(1) (phi 0.9) instead of independent per minute, so
  both arms move together slowly and pooling each arm over its own time profile leaks into the ratio.
* trend: log latency falls by 0.4 and log CPU per request by 0.2 over the run (part of a diurnal cycle).
* arm-autocorrelation: each arm's own latency noise is AR(1) (phi 0.8): blocks are not independent.
* cpu-drift: the common CPU-per-request factor is AR(1) (phi 0.9, sigma 0.15).
* error-bursts: each arm's error probability is multiplied per minute by its own gamma factor (mean
  1, CV 1): counts are over-dispersed, not Poisson.
* errors-doubled: the candidate's error rate is twice the baseline's 0.2% (a guard violated).
* whole-pods: each arm runs whole pods (a 5% arm still runs one), each with idle CPU.
* heavy-tail: the slow 3% of requests are lognormal with sigma 1.3 around 150 ms.
* varying-traffic: total traffic swings by exp(+-0.5) over the run, and latency and CPU per
  request grow with load (elasticities 0.3 and 0.1).

``KPI_CELLS`` puts a KPI other than p99 at its boundary (throughput per CPU-second at 1.5x).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import signal, special

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
    # Stressors (all off by default; see the module docstring and STRESSORS).
    common_phi: float = 0.0  # AR(1) coefficient of the common latency noise (marginal sigma unchanged)
    arm_phi: float = 0.0  # AR(1) coefficient of each arm's own latency noise
    cpu_common_sigma: float = 0.1
    cpu_common_phi: float = 0.0
    latency_trend: float = 0.0  # change of log latency from the first to the last block
    cpu_trend: float = 0.0  # change of log CPU per request from the first to the last block
    error_cv: float = 0.0  # CV of the per-arm, per-minute gamma factor on the error probability
    whole_pods: bool = False
    tail_share: float = 0.03
    tail_median: float = 0.120
    tail_sigma: float = 0.7
    traffic_swing: float = 0.0  # amplitude of log traffic over the run (one sine period)
    load_latency_elasticity: float = 0.0  # d log latency / d log traffic
    load_cpu_elasticity: float = 0.0  # d log CPU per request / d log traffic

    def weights(self) -> Float:
        """Configured candidate percent per block."""
        step = np.minimum(np.arange(self.minutes) // self.step_minutes, len(self.steps) - 1)
        return np.asarray(np.array(self.steps)[step], dtype=np.float64)


# name -> the Scenario fields it changes (kept in every bench row as ``stressor_params``).
STRESSORS: dict[str, dict[str, Any]] = {
    "none": {},
    "common-drift": {"common_phi": 0.9},
    "trend": {"latency_trend": -0.4, "cpu_trend": -0.2},
    "arm-autocorrelation": {"arm_phi": 0.8},
    "cpu-drift": {"cpu_common_phi": 0.9, "cpu_common_sigma": 0.15},
    "error-bursts": {"error_cv": 1.0},
    "errors-doubled": {"candidate_error_ratio": 2.0},
    "whole-pods": {"whole_pods": True, "idle_cores_per_pod": 0.005},
    "heavy-tail": {"tail_median": 0.150, "tail_sigma": 1.3},
    "varying-traffic": {"traffic_swing": 0.5, "load_latency_elasticity": 0.3, "load_cpu_elasticity": 0.1},
}

# kpi -> the Scenario fields that put it at its boundary (the p99 KPI is set by true_ratio instead).
KPI_CELLS: dict[str, dict[str, Any]] = {
    "p99-latency": {},
    "throughput-per-cpu": {"candidate_cpu_ratio": 1.0 / 1.5},
    "error-rate": {},
}


def scenario(
    true_ratio: float, rps: float, buckets: str, stressor: str = "none", kpi: str = "p99-latency"
) -> Scenario:
    """The Scenario of one bench cell: a stressor switched on alone, a KPI (or guard) at its boundary."""
    if stressor not in STRESSORS:
        raise ValueError(f"unknown stressor {stressor!r}; known: {', '.join(STRESSORS)}")
    if kpi not in KPI_CELLS:
        raise ValueError(f"unknown kpi {kpi!r}; known: {', '.join(KPI_CELLS)}")
    return Scenario(true_ratio, rps, buckets, **STRESSORS[stressor], **KPI_CELLS[kpi])


def changed(scn: Scenario) -> dict[str, Any]:
    """The fields of ``scn`` that differ from the plain simulator (what a bench row reports)."""
    default = Scenario(scn.true_ratio, scn.rps)
    skip = {"true_ratio", "rps", "buckets"}
    return {
        f.name: getattr(scn, f.name)
        for f in fields(scn)
        if f.name not in skip and getattr(scn, f.name) != getattr(default, f.name)
    }


def mixture_cdf(log_x: Float, scn: Scenario | None = None) -> Float:
    """CDF of the latency mixture at log seconds (the scenario's tail component, if given)."""
    share, median, sigma = (
        (0.03, 0.120, 0.7) if scn is None else (scn.tail_share, scn.tail_median, scn.tail_sigma)
    )
    return np.asarray(
        (1.0 - share) * special.ndtr((log_x - math.log(0.020)) / 0.5)
        + share * special.ndtr((log_x - math.log(median)) / sigma),
        dtype=np.float64,
    )


def ar1(standard: Float, phi: float, sigma: float) -> Float:
    """AR(1) along axis 1 with marginal standard deviation ``sigma``, from standard normal draws.
    The first block starts in the stationary law, so the marginal is the same in every block; with
    phi = 0 this is just ``sigma * standard`` (the plain simulator's draws, unchanged)."""
    if phi == 0.0:
        return sigma * standard
    shocks = standard * math.sqrt(1.0 - phi * phi)
    shocks[:, 0] = standard[:, 0]
    return np.asarray(sigma * signal.lfilter([1.0], [1.0, -phi], shocks, axis=1), dtype=np.float64)


def load_profile(scn: Scenario, n_blocks: int) -> Float:
    """Log traffic multiplier per block (0 unless the traffic varies): one slow sine over the run."""
    if scn.traffic_swing == 0.0:
        return np.zeros(n_blocks)
    return np.asarray(
        scn.traffic_swing * np.sin(2.0 * math.pi * np.arange(n_blocks) / n_blocks), dtype=np.float64
    )


def _ramp(n_blocks: int) -> Float:
    return np.linspace(0.0, 1.0, n_blocks) if n_blocks > 1 else np.zeros(n_blocks)


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
    load = load_profile(scn, n_blocks)
    mean_requests = 2.0 * scn.rps * scn.interval * share * np.exp(load)[:, None]
    requests = rng.poisson(mean_requests, size=(runs, n_blocks, 2)).astype(np.float64)

    counts = _latency_counts(scn, rng, requests, bounds, load)
    errors = _errors(scn, rng, requests)
    pods = _pods(scn, share, runs)
    cpu_per_request = scn.cpu_per_request * np.array([1.0, scn.candidate_cpu_ratio])
    cpu_noise = ar1(
        rng.normal(size=(runs, n_blocks, 1)), scn.cpu_common_phi, scn.cpu_common_sigma
    ) + rng.normal(0.0, 0.05, size=(runs, n_blocks, 2))
    cpu_shift = scn.cpu_trend * _ramp(n_blocks) + scn.load_cpu_elasticity * load
    cpu_noise = cpu_noise + cpu_shift[None, :, None]
    cpu = requests * cpu_per_request * np.exp(cpu_noise) + scn.idle_cores_per_pod * pods * scn.interval
    memory_per_pod = scn.memory_per_pod * np.array([1.0, scn.candidate_memory_ratio])
    memory = pods * memory_per_pod * np.exp(rng.normal(0.0, 0.02, size=(runs, n_blocks, 2)))
    fault_rate = np.array([0.0, scn.candidate_fault_rate])
    faults = rng.poisson(fault_rate * pods * scn.interval / 3600.0).astype(np.float64)
    return Batch(scn, bounds, weight, requests, counts, errors, cpu, memory, pods, faults)


def _latency_counts(
    scn: Scenario, rng: np.random.Generator, requests: Float, bounds: Float, load: Float
) -> Float:
    """Per-block bucket counts: one multinomial per block over the noisy mixture's bucket probabilities."""
    runs, n_blocks, _ = requests.shape
    arm_ratio = np.array([0.0, math.log(scn.true_ratio)])
    shift = scn.latency_trend * _ramp(n_blocks) + scn.load_latency_elasticity * load
    log_scale = (
        ar1(rng.normal(size=(runs, n_blocks, 1)), scn.common_phi, scn.common_sigma)
        + ar1(rng.normal(size=(runs, n_blocks, 2)), scn.arm_phi, scn.arm_sigma)
        + arm_ratio
        + shift[None, :, None]
    )
    cdf = mixture_cdf(np.log(bounds)[None, None, None, :] - log_scale[..., None], scn)
    edges = np.concatenate((np.zeros((*cdf.shape[:-1], 1)), cdf, np.ones((*cdf.shape[:-1], 1))), axis=-1)
    probs = np.clip(np.diff(edges, axis=-1), 0.0, 1.0)
    probs /= probs.sum(axis=-1, keepdims=True)
    return np.asarray(rng.multinomial(requests.astype(np.int64), probs), dtype=np.float64)


def _errors(scn: Scenario, rng: np.random.Generator, requests: Float) -> Float:
    """Binomial errors; with ``error_cv`` > 0 each arm's probability bursts per minute (gamma, mean 1)."""
    error_p = np.array([scn.error_rate, min(1.0, scn.error_rate * scn.candidate_error_ratio)])
    if scn.error_cv > 0.0:
        shape = 1.0 / scn.error_cv**2
        burst = rng.gamma(shape, 1.0 / shape, size=requests.shape)
        p = np.minimum(error_p * burst, 1.0)
    else:
        p = np.broadcast_to(error_p, requests.shape)
    return np.asarray(rng.binomial(requests.astype(np.int64), p), dtype=np.float64)


def _pods(scn: Scenario, share: Float, runs: int) -> Float:
    """Pods per arm and block: proportional to the traffic share (fractional: the idealisation the plain
    simulator makes), or whole pods with at least one per arm (what a Deployment actually runs)."""
    total_pods = 2.0 + 2.0 * scn.rps * scn.cpu_per_request / 0.5
    per_arm = share * total_pods
    if scn.whole_pods:
        per_arm = np.maximum(1.0, np.ceil(per_arm - 1e-9))
    return np.broadcast_to(per_arm, (runs, *share.shape)).copy()
