"""The PromQL of each ``spec.analysis.metrics`` preset, and its resolution per arm.

Series are named and labelled exactly as the systems export them:

- ``istio``: the destination sidecar's ``istio_requests_total`` (``response_code``) and
  ``istio_request_duration_milliseconds_bucket`` (milliseconds), ``reporter="destination"``, each
  arm selected by ``destination_workload`` (its Deployment) in ``destination_workload_namespace``;
- ``ingress-nginx``: the controller's ``nginx_ingress_controller_requests`` (``status``) and
  ``nginx_ingress_controller_request_duration_seconds_bucket``, labelled with the Ingress's
  ``namespace``; a request the canary Ingress sent to the candidate carries ``canary`` =
  ``<namespace>-<service>-<port>`` (the alternative upstream), every other request ``canary=""`` and
  the main Ingress's backend Service in ``service``;
- ``cadvisor``: cAdvisor's ``container_cpu_usage_seconds_total`` and
  ``container_memory_working_set_bytes`` (per ``namespace``, ``pod``, ``container``; the pod-level
  cgroup series, ``container=""`` and ``container="POD"``, are left out so nothing counts twice) and
  kube-state-metrics' restarts with their last termination reason.

A template is PromQL with placeholders (``model.promql.PLACEHOLDERS``), filled in here per arm.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from ferrocanary.metrics import queries
from ferrocanary.model import decisions
from ferrocanary.model import metrics as metrics_spec
from ferrocanary.model import spec as canary_spec

#: Coarse default buckets of the presets' latency histograms, and the setting that fixes them.
BUCKET_ADVICE: Mapping[str, str] = {
    "istio": (
        "Istio's default request-duration buckets (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000 ms, ...) "
        "are too coarse to judge a p99 margin; set the pod annotation "
        "sidecar.istio.io/statsHistogramBuckets: "
        "'{\"istiocustom\": [<bounds in ms, each <= 1.1x the previous>]}' on both Deployments"
    ),
    "ingress-nginx": (
        "ingress-nginx's default request-duration buckets (Prometheus' 0.005 ... 10 s) are too coarse "
        "to judge a p99 margin; start the controller with --time-buckets=<bounds in s, each <= 1.1x the "
        "previous> (chart value controller.extraArgs.time-buckets)"
    ),
}

_CADVISOR = 'namespace="{{namespace}}",pod=~"{{pods}}",container!="",container!="POD"'
_ISTIO = (
    'reporter="destination",destination_workload_namespace="{{namespace}}",'
    'destination_workload="{{deployment}}"'
)
_NGINX_BASELINE = 'namespace="{{namespace}}",service="{{service}}",canary=""'
_NGINX_CANDIDATE = 'namespace="{{namespace}}",canary=~"{{namespace}}-{{service}}-[a-z0-9]+"'

#: preset -> signal -> template (both arms) or (baseline template, candidate template).
PRESET_TEMPLATES: Mapping[str, Mapping[str, str | tuple[str, str]]] = {
    "istio": {
        "requests": f"istio_requests_total{{{_ISTIO}}}",
        "errors": f'istio_requests_total{{{_ISTIO},response_code=~"5.."}}',
        "latency": f"istio_request_duration_milliseconds_bucket{{{_ISTIO}}}",
    },
    "ingress-nginx": {
        "requests": (
            f"nginx_ingress_controller_requests{{{_NGINX_BASELINE}}}",
            f"nginx_ingress_controller_requests{{{_NGINX_CANDIDATE}}}",
        ),
        "errors": (
            f'nginx_ingress_controller_requests{{{_NGINX_BASELINE},status=~"5.."}}',
            f'nginx_ingress_controller_requests{{{_NGINX_CANDIDATE},status=~"5.."}}',
        ),
        "latency": (
            f"nginx_ingress_controller_request_duration_seconds_bucket{{{_NGINX_BASELINE}}}",
            f"nginx_ingress_controller_request_duration_seconds_bucket{{{_NGINX_CANDIDATE}}}",
        ),
    },
}
RESOURCE_TEMPLATES: Mapping[str, str] = {
    "cpu": f"container_cpu_usage_seconds_total{{{_CADVISOR}}}",
    "memory": f"sum(avg_over_time(container_memory_working_set_bytes{{{_CADVISOR}}}[{{{{range}}}}]))",
    "pods": (
        "count(count by (pod) (max_over_time("
        f"container_memory_working_set_bytes{{{_CADVISOR}}}[{{{{range}}}}])))"
    ),
}
_LATENCY_UNIT = {"istio": 0.001}


def render(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each ``{{name}}`` replaced by ``values[name]``."""
    for name, value in values.items():
        template = template.replace("{{" + name + "}}", value)
    return template


def _values(
    arm: str, namespace: str, spec: canary_spec.CanarySpec, selectors: tuple[str, str], rng: str
) -> dict[str, str]:
    build = spec.baseline if arm == "baseline" else spec.candidate
    return {
        "namespace": namespace,
        "deployment": build.deployment,
        "service": build.service or "",
        "pods": queries.deployment_pods(build.deployment),
        "arm": arm,
        "selector": selectors[0],
        "podSelector": selectors[1],
        "range": rng,
    }


def _template_for(spec: canary_spec.CanarySpec, signal: str, arm: str) -> str | None:
    """The spec's template, else the preset's (request signals) or cAdvisor's (resources), else None."""
    metrics = spec.metrics
    if signal in metrics.templates:
        return metrics.templates[signal]
    chosen = PRESET_TEMPLATES.get(metrics.preset, {}).get(signal)
    if chosen is None and metrics.resources == "cadvisor":
        chosen = RESOURCE_TEMPLATES.get(signal)
    if isinstance(chosen, tuple):
        return chosen[0] if arm == "baseline" else chosen[1]
    return chosen


def arm_queries(
    arm: str, namespace: str, spec: canary_spec.CanarySpec, selectors: tuple[str, str], rng: str
) -> queries.ArmQueries:
    """One arm's queries: the contract's, with each signal the preset or a template names replaced.

    ``selectors`` are the arm's workload and kube-state-metrics selectors (``ArmSelectors``).
    """
    values = _values(arm, namespace, spec, selectors, rng)
    base = queries.contract_queries(selectors[0], selectors[1], rng)

    def pick(signal: str, default: str) -> str:
        template = _template_for(spec, signal, arm)
        return default if template is None else render(template, values)

    unit = spec.metrics.latency_unit
    return queries.ArmQueries(
        requests=pick("requests", base.requests),
        errors=pick("errors", base.errors),
        latency_buckets=pick("latency", base.latency_buckets),
        cpu=pick("cpu", base.cpu),
        memory=pick("memory", base.memory),
        pods=pick("pods", base.pods),
        container_faults=pick("faults", base.container_faults),
        panics=base.panics,
        latency_unit_seconds=(
            metrics_spec.LATENCY_UNITS[unit]
            if unit is not None
            else _LATENCY_UNIT.get(spec.metrics.preset, 1.0)
        ),
    )


def custom_queries(
    namespace: str, spec: canary_spec.CanarySpec, selectors: Mapping[str, tuple[str, str]], rng: str
) -> dict[str, queries.CustomKpiQueries]:
    """Each custom KPI's queries, its placeholders filled per arm (``selectors``: arm -> both selectors)."""
    values = {arm: _values(arm, namespace, spec, selectors[arm], rng) for arm in queries.ARMS}

    def per_arm(template: str) -> dict[str, str]:
        return {arm: render(template, values[arm]) for arm in queries.ARMS} if template else {}

    return {
        kpi.name: queries.CustomKpiQueries(
            kind=kpi.kind,
            numerator=per_arm(kpi.numerator),
            denominator=per_arm(kpi.denominator),
            histogram=per_arm(kpi.histogram),
            unit_seconds=metrics_spec.LATENCY_UNITS[kpi.latency_unit],
        )
        for kpi in spec.metrics.kpis
    }


def bucket_advice(spec: canary_spec.CanarySpec) -> str | None:
    """What to change when the preset's latency histogram keeps its system's coarse default buckets."""
    if "latency" in spec.metrics.templates:
        return None
    return BUCKET_ADVICE.get(spec.metrics.preset)


COARSE_BUCKETS = "Latency buckets too coarse"  # how the judge's Invalid verdict on buckets begins


def with_bucket_advice(judgement: decisions.Judgement, spec: canary_spec.CanarySpec) -> decisions.Judgement:
    """The judgement, its coarse-bucket verdict naming the preset's bucket setting that fixes it."""
    advice = bucket_advice(spec)
    if advice is None or not judgement.reason.startswith(COARSE_BUCKETS):
        return judgement
    return dataclasses.replace(judgement, reason=f"{judgement.reason} {advice}.")
