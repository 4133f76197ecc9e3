"""Every PromQL template ferrocanary runs; the Grafana dashboards import the same functions.

Workload series follow the metrics contract (docs/metrics-contract): ``http_requests_total`` with
``code``, the ``http_request_duration_seconds`` histogram, ``panics_total`` and the process collector.
Which arm a series belongs to comes from the scrape (``track="baseline"|"candidate"``), so every
template takes a selector: label matchers without braces, e.g. ``namespace="shop",track="candidate"``.
``rng`` is a PromQL range: the analysis interval (``"60s"``) or a Grafana variable (``"$__interval"``).
Memory faults read kube-state-metrics, whose series carry ``pod`` but no ``track``: they take a pod
selector instead. Both defaults name the arm's own Deployment's pods (``<deployment>-<hash>-<id>``,
as a ReplicaSet names them), so two canaries in one namespace never read each other's series and a
Deployment ``scorer`` never reads the pods of ``scorer-rust``.
"""

from __future__ import annotations

from dataclasses import dataclass

ARMS: tuple[str, str] = ("baseline", "candidate")
SERVER_ERRORS = 'code=~"5.."'


def matchers(*parts: str) -> str:
    """Join label matchers, skipping empty ones: ``{a="1",b="2"}`` (``{}`` selects all)."""
    return "{" + ",".join(p.strip().strip(",") for p in parts if p and p.strip()) + "}"


def range_of(interval_seconds: float) -> str:
    """A PromQL range for a block length in seconds (whole seconds, as the CRD's durations are)."""
    return f"{round(interval_seconds)}s"


def deployment_pods(deployment: str) -> str:
    """A PromQL regex for the pods of one Deployment: ``<name>-<pod-template-hash>-<suffix>``.

    PromQL anchors regexes, so ``scorer`` does not match ``scorer-rust-7c9d4-x2k4q``; a dot in the
    name is literal (escaped for the regex and again for the PromQL string).
    """
    return deployment.replace(".", "\\\\.") + "-[a-z0-9]+-[a-z0-9]+"


def default_selectors(namespace: str, baseline_deployment: str, candidate_deployment: str) -> dict[str, str]:
    """The spec's ``analysis.selectors`` defaults, keyed as in the CRD."""
    baseline_pods = f'pod=~"{deployment_pods(baseline_deployment)}"'
    candidate_pods = f'pod=~"{deployment_pods(candidate_deployment)}"'
    return {
        "baseline": f'namespace="{namespace}",track="baseline",{baseline_pods}',
        "candidate": f'namespace="{namespace}",track="candidate",{candidate_pods}',
        "baselinePods": f'namespace="{namespace}",{baseline_pods}',
        "candidatePods": f'namespace="{namespace}",{candidate_pods}',
    }


# --- raw counters, read at block boundaries and differenced by the source (no extrapolation) ------


def requests_counter(selector: str) -> str:
    return f"http_requests_total{matchers(selector)}"


def errors_counter(selector: str) -> str:
    return f"http_requests_total{matchers(selector, SERVER_ERRORS)}"


def latency_bucket_counter(selector: str) -> str:
    return f"http_request_duration_seconds_bucket{matchers(selector)}"


def cpu_counter(selector: str) -> str:
    return f"process_cpu_seconds_total{matchers(selector)}"


def panics_counter(selector: str) -> str:
    return f"panics_total{matchers(selector)}"


@dataclass(frozen=True)
class ArmQueries:
    """Every query the source runs for one arm, resolved (``presets.resolve`` builds them).

    Counters (``requests``, ``errors``, ``latency_buckets``, ``cpu``, ``panics``) are read raw at block
    boundaries; ``memory``, ``pods`` and ``container_faults`` are ``..._over_time`` aggregates over
    the block, read at its end. ``latency_unit_seconds`` converts the histogram's ``le`` to seconds
    (Istio's is in milliseconds). ``panics`` is None where the source has no panic counter.
    """

    requests: str
    errors: str
    latency_buckets: str
    cpu: str
    memory: str
    pods: str
    container_faults: str
    panics: str | None = None
    latency_unit_seconds: float = 1.0

    def by_signal(self) -> dict[str, str]:
        """The queries keyed by the signal they feed (as ``ferrocanary queries`` prints them)."""
        shown = {
            "requests": self.requests,
            "errors": self.errors,
            "latency": self.latency_buckets,
            "cpu": self.cpu,
            "memory": self.memory,
            "pods": self.pods,
            "faults": self.container_faults,
        }
        if self.panics is not None:
            shown["panics"] = self.panics
        return shown


@dataclass(frozen=True)
class CustomKpiQueries:
    """One custom KPI's queries per arm: ``ratio`` reads two counters, ``quantile`` a histogram."""

    kind: str
    numerator: dict[str, str]  # arm -> query (ratio)
    denominator: dict[str, str]
    histogram: dict[str, str]  # arm -> _bucket series (quantile)
    unit_seconds: float = 1.0  # the histogram's le unit

    def by_arm(self) -> dict[str, dict[str, str]]:
        """As ``ferrocanary queries`` prints them."""
        names = ("numerator", "denominator") if self.kind == "ratio" else ("histogram",)
        return {arm: {n: getattr(self, n)[arm] for n in names} for arm in ARMS}


def contract_queries(selector: str, pod_selector: str, rng: str) -> ArmQueries:
    """The metrics contract's queries for one arm (its workload and kube-state-metrics selectors)."""
    return ArmQueries(
        requests=requests_counter(selector),
        errors=errors_counter(selector),
        latency_buckets=latency_bucket_counter(selector),
        cpu=cpu_counter(selector),
        memory=memory_bytes(selector, rng),
        pods=pods(selector, rng),
        container_faults=container_faults(pod_selector, rng),
        panics=panics_counter(selector),
    )


# --- the same signals as increases over a range (dashboards, alerts, ad-hoc checks) ---------------


def requests(selector: str, rng: str) -> str:
    return f"sum(increase(http_requests_total{matchers(selector)}[{rng}]))"


def errors(selector: str, rng: str) -> str:
    return f"sum(increase(http_requests_total{matchers(selector, SERVER_ERRORS)}[{rng}]))"


def latency_buckets(selector: str, rng: str) -> str:
    """Cumulative bucket counts by ``le``; the source differences them into per-bucket counts."""
    return f"sum by (le) (increase(http_request_duration_seconds_bucket{matchers(selector)}[{rng}]))"


def cpu_seconds(selector: str, rng: str) -> str:
    return f"sum(increase(process_cpu_seconds_total{matchers(selector)}[{rng}]))"


def memory_bytes(selector: str, rng: str) -> str:
    """Mean resident memory over the block, summed over the arm's pods."""
    return f"sum(avg_over_time(process_resident_memory_bytes{matchers(selector)}[{rng}]))"


def pods(selector: str, rng: str) -> str:
    """Pods (scrape targets) of the arm seen during the block."""
    return f"count(max_over_time(process_start_time_seconds{matchers(selector)}[{rng}]))"


def panics(selector: str, rng: str) -> str:
    return f"sum(increase(panics_total{matchers(selector)}[{rng}]))"


def container_faults(pod_selector: str, rng: str) -> str:
    """Container restarts whose last termination was an OOMKill, a SIGSEGV (139) or a SIGABRT (134)."""
    sel = matchers(pod_selector)
    oom = matchers(pod_selector, 'reason="OOMKilled"')
    code = f"kube_pod_container_status_last_terminated_exitcode{sel}"
    return (
        f"sum(increase(kube_pod_container_status_restarts_total{sel}[{rng}])"
        " * on (namespace, pod, container) group_left () ("
        f"max by (namespace, pod, container) (kube_pod_container_status_last_terminated_reason{oom})"
        f" or max by (namespace, pod, container) (({code} == bool 139) + ({code} == bool 134))"
        "))"
    )


# --- the same signals as a person reads them on a dashboard ---------------------------------------


def latency_quantile(selector: str, quantile: float, rng: str) -> str:
    return (
        f"histogram_quantile({quantile}, sum by (le) "
        f"(rate(http_request_duration_seconds_bucket{matchers(selector)}[{rng}])))"
    )


def request_rate(selector: str, rng: str) -> str:
    return f"sum(rate(http_requests_total{matchers(selector)}[{rng}]))"


def error_ratio(selector: str, rng: str) -> str:
    return f"{errors(selector, rng)} / {requests(selector, rng)}"


def requests_per_cpu_second(selector: str, rng: str) -> str:
    return f"{requests(selector, rng)} / {cpu_seconds(selector, rng)}"


# --- the operator's own series (exposition.py exports them) --------------------------------------

WEIGHT = "ferrocanary_canary_weight_percent"
PHASE = "ferrocanary_canary_phase"
KPI_ESTIMATE = "ferrocanary_kpi_estimate_ratio"
KPI_LOWER = "ferrocanary_kpi_lower_ratio"
KPI_UPPER = "ferrocanary_kpi_upper_ratio"
KPI_TARGET = "ferrocanary_kpi_target_ratio"
KPI_DECISION = "ferrocanary_kpi_decision"
KPI_ETA = "ferrocanary_kpi_eta_seconds"
DECISIONS = "ferrocanary_decisions_total"
RECONCILE_DURATION = "ferrocanary_reconcile_duration_seconds"
# Each build's figures over the newest judged block (status.arms), whatever the preset: labelled
# ``arm`` (baseline, candidate); the latency one also ``quantile`` (0.5, 0.99).
ARM_FIGURES: dict[str, tuple[str, str]] = {
    "requestsPerSecond": ("ferrocanary_arm_requests_per_second", "Requests per second the build served."),
    "errorRatio": ("ferrocanary_arm_error_ratio", "Share of the build's requests answered 5xx."),
    "cpuCores": ("ferrocanary_arm_cpu_cores", "CPU the build's pods used, in cores."),
    "memoryBytes": ("ferrocanary_arm_memory_bytes", "Memory the build's pods used, summed."),
    "costPerRequest": ("ferrocanary_arm_cost_per_request_dollars", "The build's cost per request in $."),
}
ARM_LATENCY = "ferrocanary_arm_latency_seconds"
ARM_QUANTILES: dict[str, str] = {"p50Seconds": "0.5", "p99Seconds": "0.99"}


def canary_series(metric: str, canary_selector: str) -> str:
    """One of the operator's series for the canaries a dashboard variable selects."""
    return f"{metric}{matchers(canary_selector)}"


def current_phase(canary_selector: str) -> str:
    return f"{PHASE}{matchers(canary_selector)} == 1"


def decision_rate(canary_selector: str, rng: str) -> str:
    return f"sum by (namespace, name, outcome) (rate({DECISIONS}{matchers(canary_selector)}[{rng}]))"


def reconcile_p99(rng: str) -> str:
    return f"histogram_quantile(0.99, sum by (le) (rate({RECONCILE_DURATION}_bucket[{rng}])))"
