"""The two dashboards: "Canary verdicts" (per RustCanary) and "Python vs Rust" (per arm).

"Canary verdicts" reads the operator's own series (``ferrocanary_*``): phase, weight, each KPI's
estimate, interval, target, reading and ETA, the judge's decisions. "Python vs Rust" reads the
workload's series the judge reads, per arm, with the operator's default selectors: latency
quantiles, requests per CPU-second, memory, cost per request, the monthly bill, faults.
"""

from __future__ import annotations

import functools

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import stat, statetimeline, table
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

from dashboards import panels as p
from dashboards import promql
from dashboards.promql import CANARY, CANARY_KPI, RATE, STEP
from ferrocanary.metrics import queries as q
from ferrocanary.model import analysis
from ferrocanary.model.decisions import Reading
from ferrocanary.policy.state import Phase

PHASE_COLORS: dict[Phase, str] = {
    Phase.PENDING: "text",
    Phase.PROGRESSING: "blue",
    Phase.PAUSED: "purple",
    Phase.WAITING_PROMOTION: "yellow",
    Phase.PROMOTING: "light-green",
    Phase.ROLLING_BACK: "light-red",
    Phase.PROMOTED: "green",
    Phase.ROLLED_BACK: "red",
    Phase.INCONCLUSIVE: "orange",
    Phase.INVALID: "dark-red",
}
READING_COLORS: dict[Reading, str] = {
    Reading.NO_DATA: "text",
    Reading.MISS: "red",
    Reading.OPEN: "yellow",
    Reading.PASS: "green",
}
BY_CANARY = "{{namespace}}/{{name}}"


def _quantile(quantile: float, selector: str) -> str:
    return q.latency_quantile(selector, quantile, RATE)


def _timeline(
    title: str, description: str, expr: str, legend: str, *, mapping: dm.ValueMap, h: int
) -> statetimeline.Panel:
    return (
        statetimeline.Panel()
        .title(title)
        .description(description)
        .datasource(p.DS)
        .span(24)
        .height(h)
        .with_target(p.query(expr, legend, "A"))
        .mappings([mapping])
        .show_value(cm.VisibilityMode.AUTO)
        .merge_values(True)
    )


def canary_verdicts() -> dm.Dashboard:
    phases = p.value_map({str(i): (ph.value, PHASE_COLORS[ph]) for i, ph in enumerate(Phase)})
    readings = p.value_map({str(c): (r.value, READING_COLORS[r]) for r, c in promql.READING_CODES.items()})
    builder = p.base(
        "ferrocanary / Canary verdicts",
        "ferrocanary-canary-verdicts",
        "Per RustCanary: phase, traffic weight, each KPI's estimate and anytime-valid interval against "
        "its target, the judge's reading and time to decision. Annotations mark promotions and rollbacks.",
    )
    builder = (
        builder.with_variable(p.datasource_variable())
        .with_variable(p.query_variable("namespace", "Namespace", f"label_values({q.PHASE}, namespace)"))
        .with_variable(
            p.query_variable("canary", "Canary", f'label_values({q.PHASE}{{namespace=~"$namespace"}}, name)')
        )
        .with_variable(
            p.query_variable("kpi", "KPI", f"label_values({q.KPI_ESTIMATE}{q.matchers(CANARY)}, kpi)")
        )
    )
    builder = p.outcome_annotations(builder, CANARY)

    builder = builder.with_row(gd.Row("Where each canary stands"))
    builder = builder.with_panel(
        stat.Panel()
        .title("Phase")
        .description("The phase now (the operator's ferrocanary_canary_phase state set).")
        .datasource(p.DS)
        .span(12)
        .height(5)
        .with_target(p.query(promql.phase_code(CANARY), BY_CANARY, "A", instant=True))
        .mappings([phases])
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.NONE)
    )
    builder = builder.with_panel(
        stat.Panel()
        .title("Traffic on the Rust build")
        .description("Percent of requests the router sends to the candidate.")
        .datasource(p.DS)
        .span(12)
        .height(5)
        .unit("percent")
        .min(0)
        .max(100)
        .with_target(p.query(q.canary_series(q.WEIGHT, CANARY), BY_CANARY, "A", instant=True))
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .graph_mode(cm.BigValueGraphMode.NONE)
    )
    builder = builder.with_panel(
        _timeline(
            "Phase over time",
            "Each canary's phase.",
            promql.phase_code(CANARY),
            BY_CANARY,
            mapping=phases,
            h=6,
        )
    )
    builder = builder.with_panel(
        p.graph("Weight over time", "Percent of traffic on the Rust build, step by step.", "percent", 24)
        .with_target(p.query(q.canary_series(q.WEIGHT, CANARY), BY_CANARY, "A"))
        .line_interpolation(cm.LineInterpolation.STEP_AFTER)
        .min(0)
        .max(100)
    )

    builder = builder.with_row(gd.Row("KPIs: estimate and interval against the target"))
    ref = p.refs()
    kpi = (
        p.graph(
            "$kpi (Rust / Python)",
            "The KPI's candidate/baseline estimate, its anytime-valid interval (dashed) and its target "
            "(red). Lower is better for latency and cost, higher for throughput per CPU.",
            "none",
            24,
        )
        .repeat("kpi")
        .repeat_direction("h")
        .max_per_row(2)
    )
    for metric, suffix in (
        (q.KPI_ESTIMATE, "estimate"),
        (q.KPI_LOWER, "lower"),
        (q.KPI_UPPER, "upper"),
        (q.KPI_TARGET, "target"),
    ):
        selector = f'{CANARY},kpi="$kpi"'
        kpi = kpi.with_target(p.query(q.canary_series(metric, selector), "{{name}} " + suffix, ref()))
    kpi = kpi.override_by_regexp(
        "/ (lower|upper)$/",
        [dm.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]})],
    ).override_by_regexp(
        "/ target$/", [dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"})]
    )
    builder = builder.with_panel(kpi)
    builder = builder.with_panel(
        _timeline(
            "Readings over time",
            "Each KPI's and guard rail's reading: Pass, Miss, Open (not yet decided) or NoData.",
            promql.reading_code(CANARY_KPI),
            "{{name}} {{kpi}}",
            mapping=readings,
            h=8,
        )
    )
    now = p.query(f"{q.KPI_DECISION}{q.matchers(CANARY_KPI)} == 1", "", "A", instant=True)
    builder = builder.with_panel(
        table.Panel()
        .title("Readings now")
        .description("The current reading of every KPI and guard rail.")
        .datasource(p.DS)
        .span(12)
        .height(8)
        .with_target(now.format(pm.PromQueryFormat.TABLE))
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {
                        "Time": True,
                        "Value": True,
                        "__name__": True,
                        "job": True,
                        "instance": True,
                    },
                    "indexByName": {"namespace": 0, "name": 1, "kpi": 2, "decision": 3},
                },
            )
        )
    )
    builder = builder.with_panel(
        p.graph(
            "Time to decision",
            "Estimated seconds until each open KPI is decided, with 50% and 80% probability.",
            "s",
        ).with_target(
            p.query(q.canary_series(q.KPI_ETA, CANARY_KPI), "{{name}} {{kpi}} ({{probability}})", "A")
        )
    )

    builder = _as_judged(builder)

    builder = builder.with_row(gd.Row("Judge and operator"))
    builder = builder.with_panel(
        p.graph("Judge decisions", "Decisions per second by outcome (one per analysis tick).", "ops")
        .with_target(p.query(q.decision_rate(CANARY, RATE), "{{name}} {{outcome}}", "A"))
        .draw_style(cm.GraphDrawStyle.BARS)
    )
    builder = builder.with_panel(
        p.graph("Reconcile duration p99", "Time one reconcile tick takes (all canaries).", "s").with_target(
            p.query(q.reconcile_p99(RATE), "p99", "A")
        )
    )
    return p.laid_out(builder.build())


def _as_judged(builder: gd.Dashboard) -> gd.Dashboard:
    """Each build's figures as the judge read them (the operator's ferrocanary_arm_* series): the same
    panels whatever the preset the canary reads (Istio's, ingress-nginx's, cAdvisor's series)."""
    builder = builder.with_row(gd.Row("Each build as the judge read it (any preset)"))
    arm = f'{CANARY},arm=~"baseline|candidate"'
    legend = "{{name}} {{arm}}"
    latency = p.graph("Latency as judged", "p50 and p99 of each build over the newest block.", "s")
    for quantile in ("0.5", "0.99"):
        latency = latency.with_target(
            p.query(
                q.canary_series(q.ARM_LATENCY, f'{arm},quantile="{quantile}"'),
                f"{legend} p{quantile}",
                f"Q{quantile}",
            )
        )
    builder = builder.with_panel(latency)
    for field, title, unit, width in (
        ("errorRatio", "Error ratio as judged", "percentunit", 12),
        ("requestsPerSecond", "Requests per second as judged", "reqps", 6),
        ("cpuCores", "CPU as judged", "none", 6),
        ("memoryBytes", "Memory as judged", "bytes", 6),
        ("costPerRequest", "Cost per request as judged", "currencyUSD", 6),
    ):
        metric, text = q.ARM_FIGURES[field]
        builder = builder.with_panel(
            p.graph(title, f"{text} Over the newest block the judge read.", unit, width).with_target(
                p.query(q.canary_series(metric, arm), legend, "A")
            )
        )
    return builder


def python_vs_rust() -> dm.Dashboard:
    prices = analysis.Pricing()
    targets = {k.kind: k.target for k in analysis.DEFAULT_KPIS}
    baseline, candidate = promql.ARMS["baseline"], promql.ARMS["candidate"]
    builder = p.base(
        "ferrocanary / Python vs Rust",
        "ferrocanary-python-vs-rust",
        "The two builds of one service side by side, from the series the judge reads: latency, "
        "throughput per CPU-second, memory, cost per request, the projected monthly bill and faults.",
    )
    workload_namespaces = 'label_values(http_requests_total{track=~"baseline|candidate"}, namespace)'
    builder = (
        builder.with_variable(p.datasource_variable())
        .with_variable(p.query_variable("namespace", "Namespace", workload_namespaces, include_all=False))
        .with_variable(
            p.textbox(
                "baseline_deployment",
                "Python Deployment",
                "scorer-python",
                "The baseline Deployment: kube-state-metrics faults are read for its pods (<name>-*).",
            )
        )
        .with_variable(
            p.textbox(
                "candidate_deployment",
                "Rust Deployment",
                "scorer-rust",
                "The candidate Deployment: kube-state-metrics faults are read for its pods (<name>-*).",
            )
        )
        .with_variable(
            p.textbox("cpu_hour", "$ per vCPU-hour", f"{prices.cpu_hour:g}", "spec.analysis.pricing.cpuHour")
        )
        .with_variable(
            p.textbox(
                "memory_gib_hour",
                "$ per GiB-hour",
                f"{prices.memory_gib_hour:g}",
                "spec.analysis.pricing.memoryGiBHour",
            )
        )
    )
    builder = p.outcome_annotations(builder, 'namespace=~"$namespace"')

    builder = builder.with_row(gd.Row("Latency"))
    for quantile in (0.5, 0.99):
        builder = builder.with_panel(
            p.per_arm(
                p.graph(f"p{quantile * 100:g} latency", "From each arm's latency histogram buckets.", "s"),
                functools.partial(_quantile, quantile),
            )
        )
    p99_target = targets[analysis.KpiKind.LATENCY_QUANTILE]
    ratio = f"{q.latency_quantile(candidate, 0.99, RATE)} / {q.latency_quantile(baseline, 0.99, RATE)}"
    builder = builder.with_panel(
        p.target_line(
            p.graph(
                "p99 ratio (Rust / Python)",
                f"Below the default target {p99_target:g} (red) is the promise.",
                "none",
            ),
            p99_target,
        ).with_target(p.query(ratio, "p99 ratio", "A"))
    )
    builder = builder.with_panel(
        p.per_arm(
            p.graph("Error ratio", "Share of requests answered 5xx.", "percentunit"),
            lambda sel: q.error_ratio(sel, RATE),
        )
    )

    builder = builder.with_row(gd.Row("Throughput and resources"))
    throughput_target = targets[analysis.KpiKind.THROUGHPUT_PER_CPU]
    builder = builder.with_panel(
        p.per_arm(
            p.graph("Requests per second", "Traffic each arm serves.", "reqps", 8),
            lambda sel: q.request_rate(sel, RATE),
        )
    )
    builder = builder.with_panel(
        p.per_arm(
            p.graph(
                "Requests per CPU-second",
                f"Requests served per second of CPU. Default target: Rust >= {throughput_target:g}x Python.",
                "none",
                8,
            ),
            lambda sel: q.requests_per_cpu_second(sel, RATE),
        )
    )
    builder = builder.with_panel(
        p.per_arm(
            p.graph("Resident memory", "Mean resident memory of each arm, summed over its pods.", "bytes", 8),
            lambda sel: q.memory_bytes(sel, RATE),
        )
    )

    builder = builder.with_row(gd.Row("Cost"))
    cost_target = targets[analysis.KpiKind.COST_PER_REQUEST]
    builder = builder.with_panel(
        p.per_arm(
            p.graph(
                "Cost per million requests",
                "CPU-seconds x $cpu_hour/3600 plus GiB-seconds x $memory_gib_hour/3600, per request, x 1e6.",
                "currencyUSD",
                8,
            ),
            lambda sel: f"({promql.cost_per_request(sel, RATE)}) * 1e6",
        )
    )
    builder = builder.with_panel(
        p.per_arm(
            p.graph(
                "Projected monthly cost",
                "Each arm's bill if it served all the traffic seen (both arms) for a 730-hour month.",
                "currencyUSD",
                8,
            ),
            lambda sel: promql.monthly_cost(sel, RATE),
        )
    )
    cost_ratio = f"({promql.cost_per_request(candidate, RATE)}) / ({promql.cost_per_request(baseline, RATE)})"
    builder = builder.with_panel(
        p.target_line(
            p.graph(
                "Cost ratio (Rust / Python)",
                f"Cost per request, candidate over baseline. Default target: <= {cost_target:g} (red).",
                "none",
                8,
            ),
            cost_target,
        ).with_target(p.query(cost_ratio, "cost ratio", "A"))
    )

    builder = builder.with_row(gd.Row("Faults"))
    builder = builder.with_panel(
        p.per_arm(
            p.graph("Rust panics", "Panics caught at the Rust boundary (each answered 500).", "short")
            .draw_style(cm.GraphDrawStyle.BARS)
            .min(0),
            lambda sel: q.panics(sel, STEP),
        )
    )
    builder = builder.with_panel(
        p.per_arm(
            p.graph(
                "Container faults",
                "Restarts after an OOMKill, a SIGSEGV (139) or a SIGABRT (134), from kube-state-metrics.",
                "short",
            )
            .draw_style(cm.GraphDrawStyle.BARS)
            .min(0),
            lambda sel: q.container_faults(sel, STEP),
            pods=True,
        )
    )
    return p.laid_out(builder.build())
