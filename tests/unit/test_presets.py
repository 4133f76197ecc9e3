"""spec.analysis.metrics: presets read each system's series as it names them, templates are checked.

A user notices: which series each arm is read from (`ferrocanary queries`), that Istio's
milliseconds become seconds, and that a template that is not PromQL, uses an unknown placeholder or
escapes its namespace or arm is refused with the field named.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from ferrocanary.cli import main as cli_main
from ferrocanary.cli.plugin import main as plugin_main
from ferrocanary.metrics import presets, protocol
from ferrocanary.model import promql
from ferrocanary.model import spec as canary_spec

ROOT = Path(__file__).resolve().parents[2]
ARMS = {
    "baseline": {"deployment": "scorer-python", "service": "scorer-python"},
    "candidate": {"deployment": "scorer-rust", "service": "scorer-rust"},
}


def _queries(metrics: dict[str, Any], **extra: Any) -> dict[str, dict[str, str]]:
    spec = canary_spec.parse({**ARMS, **extra, "analysis": {"metrics": metrics}})
    return {arm: q.by_signal() for arm, q in protocol.resolved_queries("shop", spec).items()}


def test_the_default_is_the_metrics_contract_unchanged() -> None:
    spec = canary_spec.parse(ARMS)
    window = protocol.canary_window("shop", spec, protocol_t0(), protocol_t0(), ())
    q = window.arm_queries("candidate")
    assert q.requests.startswith('http_requests_total{namespace="shop",track="candidate"')
    assert q.latency_unit_seconds == 1.0
    assert q.panics is not None
    assert q.panics.startswith("panics_total{")


def protocol_t0() -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC)


def test_istio_reads_the_destination_sidecars_series_by_workload_in_milliseconds() -> None:
    q = _queries({"preset": "istio"})
    assert q["candidate"]["requests"] == (
        'istio_requests_total{reporter="destination",destination_workload_namespace="shop",'
        'destination_workload="scorer-rust"}'
    )
    assert 'response_code=~"5.."' in q["baseline"]["errors"]
    assert q["baseline"]["latency"].startswith("istio_request_duration_milliseconds_bucket{")
    assert 'destination_workload="scorer-python"' in q["baseline"]["latency"]
    spec = canary_spec.parse({**ARMS, "analysis": {"metrics": {"preset": "istio"}}})
    assert protocol.resolved_queries("shop", spec)["candidate"].latency_unit_seconds == 0.001
    # resources default to cAdvisor: an Istio workload rarely carries the contract's track label
    assert q["candidate"]["cpu"].startswith("container_cpu_usage_seconds_total{")


def test_ingress_nginx_tells_the_arms_apart_by_the_canary_label() -> None:
    q = _queries({"preset": "ingress-nginx"})
    assert q["baseline"]["requests"] == (
        'nginx_ingress_controller_requests{namespace="shop",service="scorer-python",canary=""}'
    )
    assert 'canary=~"shop-scorer-rust-[a-z0-9]+"' in q["candidate"]["requests"]
    assert 'status=~"5.."' in q["candidate"]["errors"]
    assert q["candidate"]["latency"].startswith("nginx_ingress_controller_request_duration_seconds_bucket{")


def test_ingress_nginx_needs_each_arms_service() -> None:
    with pytest.raises(ValueError, match=r"spec\.baseline\.service: required by spec\.analysis\.metrics"):
        canary_spec.parse(
            {
                "baseline": {"deployment": "a"},
                "candidate": {"deployment": "b", "service": "b"},
                "analysis": {"metrics": {"preset": "ingress-nginx"}},
            }
        )


def test_cadvisor_reads_containers_not_the_pod_cgroup_and_keeps_contract_requests() -> None:
    q = _queries({"preset": "cadvisor"})
    cpu, memory = q["candidate"]["cpu"], q["candidate"]["memory"]
    assert cpu.startswith("container_cpu_usage_seconds_total{")
    assert 'container!="POD"' in cpu
    assert "container_memory_working_set_bytes{" in memory
    assert "[60s]" in memory
    assert 'pod=~"scorer-rust-[a-z0-9]+-[a-z0-9]+"' in memory
    assert "kube_pod_container_status_last_terminated_reason" in q["candidate"]["faults"]
    assert q["candidate"]["requests"].startswith("http_requests_total{")


def test_a_template_overrides_one_signal_with_placeholders_filled_per_arm() -> None:
    q = _queries(
        {
            "preset": "istio",
            "templates": {"cpu": 'process_cpu_seconds_total{namespace="{{namespace}}",build="{{arm}}"}'},
        }
    )
    assert q["baseline"]["cpu"] == 'process_cpu_seconds_total{namespace="shop",build="baseline"}'
    assert q["candidate"]["cpu"] == 'process_cpu_seconds_total{namespace="shop",build="candidate"}'


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ('x{namespace="{{namespace}}",pod=~"{{pod}}"}', r"unknown placeholder \{\{pod\}\}"),
        ('x{namespace="{{namespace}}",pod=~"{{pods}}"', "never closed"),
        ('x{namespace="{{namespace}}" pod}', "not a label matcher"),
        ('x{namespace="{{namespace}}",pod=~"{{pods}}"}; y', "unexpected ';'"),
        ("x", "has no label matchers"),
        ('x{namespace="other",pod=~"{{pods}}"}', "escapes the canary's namespace"),
        ('x{namespace=~"{{namespace}}|other",pod=~"{{pods}}"}', "escapes the canary's namespace"),
        ('x{namespace="{{namespace}}"}', "reads both arms alike"),
        ('x{{{selector}}} or y{namespace="{{namespace}}"}', "reads both arms alike"),
    ],
)
def test_a_bad_template_is_refused_naming_the_field(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"spec\.analysis\.metrics\.templates\.requests: .*" + message):
        _queries({"templates": {"requests": template}})


def test_range_is_only_for_gauges_and_unknown_keys_are_named() -> None:
    with pytest.raises(ValueError, match=r"templates\.cpu: unknown placeholder \{\{range\}\}"):
        _queries({"templates": {"cpu": "rate(x{{{selector}}}[{{range}}])"}})
    with pytest.raises(ValueError, match=r"spec\.analysis\.metrics\.preset: expected one of"):
        _queries({"preset": "linkerd"})
    with pytest.raises(ValueError, match=r"spec\.analysis\.metrics\.templates\.latencies: unknown signal"):
        _queries({"templates": {"latencies": "x{{{selector}}}"}})


def test_every_preset_template_passes_the_checks_users_templates_do() -> None:
    for preset, signals in presets.PRESET_TEMPLATES.items():
        for signal, template in signals.items():
            for one in template if isinstance(template, tuple) else (template,):
                promql.check(one, f"{preset}.{signal}")
    for signal, template in presets.RESOURCE_TEMPLATES.items():
        promql.check(template, f"cadvisor.{signal}")


def test_the_crd_offers_the_presets_the_model_knows() -> None:
    crd = yaml.safe_load((ROOT / "crds" / "rustcanaries.ferrocanary.io.yaml").read_text())
    analysis = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "analysis"
    ]
    metrics = analysis["properties"]["metrics"]["properties"]
    assert metrics["preset"]["enum"] == ["contract", "istio", "ingress-nginx", "cadvisor"]
    assert set(metrics["templates"]["properties"]) == {
        "requests",
        "errors",
        "latency",
        "cpu",
        "memory",
        "pods",
        "faults",
    }


@pytest.mark.parametrize("preset", ["istio", "ingress-nginx", "cadvisor"])
def test_ferrocanary_queries_prints_each_examples_series(
    preset: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = ROOT / "crds" / "examples" / f"metrics-{preset}.yaml"
    assert cli_main.main(["queries", "--canary", str(path), "--json", "-n", "shop"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["preset"], result["namespace"]) == (preset, "shop")
    expected = {
        "istio": "istio_request_duration_milliseconds_bucket",
        "ingress-nginx": "nginx_ingress_controller_request_duration_seconds_bucket",
        "cadvisor": "scorer_request_seconds_bucket",
    }[preset]
    for arm in ("baseline", "candidate"):
        assert result["queries"][arm]["latency"].startswith(expected)
        assert result["queries"][arm]["memory"].startswith(
            "sum(avg_over_time(container_memory_working_set_bytes"
        )
    assert (result["bucketAdvice"] is not None) == (preset != "cadvisor")


def test_ferrocanary_queries_refuses_a_bad_template_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = {
        "kind": "RustCanary",
        "metadata": {"name": "x"},
        "spec": {**ARMS, "analysis": {"metrics": {"templates": {"errors": "http_errors_total"}}}},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(manifest))
    assert cli_main.main(["queries", "--canary", str(path)]) == 2
    assert "spec.analysis.metrics.templates.errors" in capsys.readouterr().err


def test_the_table_prints_regexes_literally(capsys: pytest.CaptureFixture[str]) -> None:
    path = ROOT / "crds" / "examples" / "metrics-cadvisor.yaml"
    assert cli_main.main(["queries", "--canary", str(path)]) == 0
    assert "[a-z0-9]+" in capsys.readouterr().out


def test_the_plugin_has_a_queries_command() -> None:
    args = plugin_main.build_parser().parse_args(["queries", "scorer", "--json", "-n", "shop"])
    assert (args.command, args.name, args.json, args.namespace) == ("queries", "scorer", True, "shop")
