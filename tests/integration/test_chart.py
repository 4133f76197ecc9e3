"""The Helm charts with the real tools: helm lint and template, the real API server's server-side dry
run of every rendering, a real install whose Deployment kwok makes Available, and the operator's
permissions checked with ``kubectl auth can-i`` as its ServiceAccount.

The ServiceMonitor and PrometheusRule kinds come from the Prometheus Operator's own CRDs, taken from
its Go module (the sandbox has no Prometheus Operator); kopf's peering kinds from the chart's crds/.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ferrocanary.cli import main as cli_main
from ferrocanary.local.sandbox import Sandbox
from ferrocanary.local.toolchain import cache_dir
from tests.support.canary import (
    TEMPLATE_CRD,
    analysis_only,
    fresh_namespaces,
    install_istio_crd,
    wait_established,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "ferrocanary"
WORKLOAD_CHART = ROOT / "charts" / "textscore"
CRD_SOURCE = ROOT / "crds" / "rustcanaries.ferrocanary.io.yaml"
PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator"
PROMETHEUS_OPERATOR_VERSION = "v0.85.0"
MONITORING_KINDS = ("servicemonitors", "prometheusrules", "podmonitors")

# Value sets a platform team would use; each is rendered, linted and dry-run applied.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced-with-token": {
        "watchNamespaces": ["{ns1}", "{ns2}"],
        "prometheus": {"address": "http://prometheus.monitoring:9090", "tokenSecret": {"name": "prom-token"}},
        "rbac": {"secretNames": ["other-token"], "istio": True, "nginx": True},
        "pricing": {"cpuHour": 0.05, "memoryGiBHour": 0.006, "monthlyRequests": 2000000000},
    },
    "monitoring": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {"enabled": True},
        "dashboards": {"annotations": {"grafana_folder": "Canaries"}},
    },
    "peering-two-replicas": {"peering": {"enabled": True, "lifetime": 20}, "replicaCount": 2},
    "bring-your-own": {"crd": {"create": False}, "rbac": {"create": False, "gatewayAPI": False}},
    # The NetworkPolicy narrowed to a known control plane and Prometheus, /metrics on loopback only.
    "locked-down": {
        "metrics": {"address": "127.0.0.1"},
        "networkPolicy": {
            "apiServer": [{"cidr": "10.0.0.10/32", "port": 6443}, {"cidr": "fd00::10/128", "port": 6443}],
            "prometheus": {
                "to": [
                    {
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
                    }
                ],
                "ports": [9090, 10902],
            },
            "dns": [{"ipBlock": {"cidr": "169.254.20.10/32"}}],
            "metrics": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}},
            "extraEgress": [{"to": [{"ipBlock": {"cidr": "192.0.2.7/32"}}], "ports": [{"port": 443}]}],
        },
    },
    "no-network-policy": {"networkPolicy": {"enabled": False}},
}


def _env(sandbox: Sandbox, tmp: Path) -> dict[str, str]:
    # Helm's caches and config in a scratch directory: nothing leaks into HOME or the checkout.
    return {
        **os.environ,
        **sandbox.env(),
        "HELM_CACHE_HOME": str(tmp / "helm-cache"),
        "HELM_CONFIG_HOME": str(tmp / "helm-config"),
        "HELM_DATA_HOME": str(tmp / "helm-data"),
    }


def _run(
    sandbox: Sandbox, tmp: Path, tool: str, *args: str, input_text: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(sandbox.bin_dir / tool), *args],
        env=_env(sandbox, tmp),
        input=input_text,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{tool} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def _helm(sandbox: Sandbox, tmp: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run(sandbox, tmp, "helm", *args, check=check)


def _dry_run(
    sandbox: Sandbox, tmp: Path, manifests: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """The real API server's verdict on manifests: admission, schemas, CEL rules; nothing stored."""
    args = ("apply", "--server-side", "--dry-run=server", "--field-manager=chart-test", "--force-conflicts")
    return _run(sandbox, tmp, "kubectl", *args, "-f", "-", input_text=manifests, check=check)


def _values(name: str, tmp: Path, **namespaces: str) -> Path:
    text = json.dumps(VALUE_SETS[name])
    for key, value in namespaces.items():
        text = text.replace("{" + key + "}", value)
    path = tmp / f"{name}.json"
    path.write_text(text)
    return path


def _template(
    sandbox: Sandbox, tmp: Path, values: Path, release: str = "fc", namespace: str = "fc"
) -> list[dict[str, Any]]:
    rendered = _run(sandbox, tmp, "helm", "template", release, str(CHART), "-n", namespace, "-f", str(values))
    return [d for d in yaml.safe_load_all(rendered.stdout) if d]


def _kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


@pytest.fixture
def helm_tmp(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="session")
def monitoring_crds(sandbox: Sandbox) -> list[str]:
    """Install the ServiceMonitor and PrometheusRule CRDs of the Prometheus Operator's Go module."""
    module_dir = cache_dir() / "go" / "mod" / f"{PROMETHEUS_OPERATOR}@{PROMETHEUS_OPERATOR_VERSION}"
    if not module_dir.is_dir():
        env = {
            **os.environ,
            "GOTOOLCHAIN": "local",
            "GOFLAGS": "-mod=mod",
            "GOMODCACHE": str(cache_dir() / "go" / "mod"),
        }
        try:
            subprocess.run(
                ["go", "mod", "download", "-json", f"{PROMETHEUS_OPERATOR}@{PROMETHEUS_OPERATOR_VERSION}"],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=True,
                cwd="/",
            )
        except (OSError, subprocess.SubprocessError) as exc:
            pytest.skip(
                f"no Prometheus Operator CRDs (go mod download failed: {exc}): monitoring kinds untested"
            )
    installed = []
    for kind in MONITORING_KINDS:
        crd = module_dir / "example" / "prometheus-operator-crd" / f"monitoring.coreos.com_{kind}.yaml"
        sandbox.kubectl("apply", "--server-side", "-f", str(crd))
        sandbox.kubectl(
            "wait", "--for=condition=Established", f"crd/{kind}.monitoring.coreos.com", "--timeout=60s"
        )
        installed.append(kind)
    return installed


@pytest.fixture(scope="session")
def rustcanary_crd(sandbox: Sandbox) -> None:
    sandbox.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_SOURCE))
    sandbox.kubectl("wait", "--for=condition=Established", "crd/rustcanaries.ferrocanary.io", "--timeout=60s")
    # kopf's peering kinds, as `helm install` would create them from the chart's crds/.
    sandbox.kubectl("apply", "--server-side", "-f", str(CHART / "crds" / "kopf-peering.yaml"))


@pytest.fixture(scope="session")
def cluster_kinds(rustcanary_crd: None, monitoring_crds: list[str]) -> None:
    """Every kind the charts render is known to the API server."""


@pytest.fixture
def namespaces(sandbox: Sandbox) -> Iterator[dict[str, str]]:
    """Three fresh namespaces: the release's and two watched ones; deleted afterwards."""
    names = {key: f"{key}-{uuid.uuid4().hex[:8]}" for key in ("rel", "ns1", "ns2")}
    with fresh_namespaces(sandbox, *names.values()):
        yield names


# ----------------------------------------------------------------------------------- render only


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_helm_lint_passes_under_every_value_set(sandbox: Sandbox, helm_tmp: Path, name: str) -> None:
    values = _values(name, helm_tmp, ns1="shop", ns2="web")
    linted = _run(sandbox, helm_tmp, "helm", "lint", "--strict", str(CHART), "-f", str(values))
    assert "1 chart(s) linted, 0 chart(s) failed" in linted.stdout


def test_the_workload_chart_lints_with_its_canary(sandbox: Sandbox, helm_tmp: Path) -> None:
    for flags in (
        [],
        ["--set", "canary.enabled=true,podMonitor.enabled=true"],
        ["--set", "canary.enabled=true,canary.routing=gatewayAPI,httpRoute.enabled=true"],
    ):
        linted = _run(sandbox, helm_tmp, "helm", "lint", "--strict", str(WORKLOAD_CHART), *flags)
        assert "0 chart(s) failed" in linted.stdout


def test_the_default_render_carries_the_crd_exactly(sandbox: Sandbox, helm_tmp: Path) -> None:
    source = yaml.safe_load(CRD_SOURCE.read_text())
    crds = _kind(_template(sandbox, helm_tmp, _values("defaults", helm_tmp)), "CustomResourceDefinition")
    assert len(crds) == 1
    assert crds[0]["spec"] == source["spec"], "the chart's CRD drifted: run `python charts/sync.py`"
    assert crds[0]["metadata"]["name"] == source["metadata"]["name"]
    assert crds[0]["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}


def test_values_become_the_crds_schema_defaults(sandbox: Sandbox, helm_tmp: Path) -> None:
    docs = _template(sandbox, helm_tmp, _values("namespaced-with-token", helm_tmp, ns1="shop", ns2="web"))
    schema = _kind(docs, "CustomResourceDefinition")[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    analysis = schema["properties"]["spec"]["properties"]["analysis"]["properties"]
    prometheus = analysis["prometheus"]
    assert prometheus["default"] == {"address": "http://prometheus.monitoring:9090"}
    assert prometheus["properties"]["address"]["default"] == "http://prometheus.monitoring:9090"
    assert prometheus["properties"]["secretRef"]["default"] == {"name": "prom-token", "key": "token"}
    pricing = analysis["pricing"]["properties"]
    assert (pricing["cpuHour"]["default"], pricing["memoryGiBHour"]["default"]) == (0.05, 0.006)
    assert pricing["monthlyRequests"]["default"] == 2_000_000_000


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_the_operator_is_started_with_a_valid_ferrocanary_run(
    sandbox: Sandbox, helm_tmp: Path, name: str
) -> None:
    docs = _template(sandbox, helm_tmp, _values(name, helm_tmp, ns1="shop", ns2="web"))
    (deployment,) = _kind(docs, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    parser = cli_main.build_parser()
    args = parser.parse_args(container["args"])
    assert args.command == "run"
    assert args.metrics_port == container["ports"][0]["containerPort"]
    watched = VALUE_SETS[name].get("watchNamespaces")
    assert args.namespace == (["shop", "web"] if watched else [])
    assert args.all_namespaces is (not watched)
    pod = deployment["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # Standalone operators must not overlap during a rollout; peers may.
    recreate = deployment["spec"].get("strategy") == {"type": "Recreate"}
    assert recreate is (not name.startswith("peering"))
    # Replicas take distinct priorities from their start (no --priority): equal ones pause them all.
    if name.startswith("peering"):
        assert args.peering == "ferrocanary"
        assert args.priority is None
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["FERROCANARY_PEERING_LIFETIME"] == "20"


def _policy(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (policy,) = _kind(docs, "NetworkPolicy")
    spec: dict[str, Any] = policy["spec"]
    return spec


def test_the_network_policy_is_rendered_by_default_and_only_then(sandbox: Sandbox, helm_tmp: Path) -> None:
    docs = _template(sandbox, helm_tmp, _values("defaults", helm_tmp))
    spec = _policy(docs)
    (deployment,) = _kind(docs, "Deployment")
    assert spec["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    # Ingress: the /metrics port, from the monitoring namespace only.
    assert spec["ingress"] == [
        {
            "ports": [{"port": "metrics", "protocol": "TCP"}],
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        }
    ]
    # Egress: DNS to kube-dns, the API server's ports, Prometheus in the monitoring namespace.
    dns, *api, prometheus = spec["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert {p["protocol"] for p in dns["ports"]} == {"UDP", "TCP"}
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert [(r["to"][0]["ipBlock"]["cidr"], r["ports"][0]["port"]) for r in api] == [
        ("0.0.0.0/0", 443),
        ("0.0.0.0/0", 6443),
    ]
    assert prometheus == {
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        "ports": [{"port": 9090, "protocol": "TCP"}],
    }
    off = _template(sandbox, helm_tmp, _values("no-network-policy", helm_tmp))
    assert not _kind(off, "NetworkPolicy")
    assert _kind(off, "Deployment"), "only the NetworkPolicy goes"


def test_the_network_policy_follows_its_values(sandbox: Sandbox, helm_tmp: Path) -> None:
    spec = _policy(_template(sandbox, helm_tmp, _values("locked-down", helm_tmp)))
    scrapers = spec["ingress"][0]["from"]
    assert scrapers[0]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}
    dns, api4, api6, prometheus, extra = spec["egress"]
    assert dns["to"] == [{"ipBlock": {"cidr": "169.254.20.10/32"}}]
    assert api4["to"] == [{"ipBlock": {"cidr": "10.0.0.10/32"}}]
    assert api6["to"] == [{"ipBlock": {"cidr": "fd00::10/128"}}]
    assert [p["port"] for p in prometheus["ports"]] == [9090, 10902]
    assert extra == {"to": [{"ipBlock": {"cidr": "192.0.2.7/32"}}], "ports": [{"port": 443}]}


@pytest.mark.parametrize(
    ("name", "address", "probed"), [("defaults", "0.0.0.0", True), ("locked-down", "127.0.0.1", False)]
)
def test_the_metrics_address_is_the_operators_environment(
    sandbox: Sandbox, helm_tmp: Path, name: str, address: str, probed: bool
) -> None:
    (deployment,) = _kind(_template(sandbox, helm_tmp, _values(name, helm_tmp)), "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["FERROCANARY_METRICS_ADDRESS"] == address
    assert not any(a.startswith("--metrics-address") for a in container["args"])
    # The kubelet probes the pod's IP: /metrics on loopback cannot answer it.
    assert ("readinessProbe" in container) is probed
    assert ("livenessProbe" in container) is probed


def test_the_chart_refuses_settings_that_cannot_work(sandbox: Sandbox, helm_tmp: Path) -> None:
    for flags, message in (
        (["--set", "replicaCount=2"], "needs peering.enabled=true"),
        (
            ["--set", "replicaCount=2", "--set", "peering.enabled=true", "--set", "peering.priority=5"],
            "needs peering.priority unset",
        ),
        (["--set", "peering.lifetime=5"], "Must be greater than or equal to 12"),
        (["--set", "prometheus.tokenSecret.name=t"], "set watchNamespaces or rbac.secretNamespaces"),
        (["--set", "prometheus.address=ftp://x"], "Does not match pattern"),
        (["--set", "watchNamespace=typo"], "Additional property watchNamespace is not allowed"),
        (["--set", "metrics.address=localhost"], "Does not match pattern"),
        (["--set", "networkPolicy.apiServer[0].cidr=apiserver.example"], "Does not match pattern"),
        (["--set", "networkPolicy.apiServer[0].port=0"], "Must be greater than or equal to 1"),
        (["--set", "networkPolicy.metrics.namespace=x"], "Additional property namespace is not allowed"),
    ):
        refused = _run(sandbox, helm_tmp, "helm", "template", "fc", str(CHART), *flags, check=False)
        assert refused.returncode != 0
        assert message in refused.stderr


def test_the_dashboards_configmap_is_labelled_for_grafanas_sidecar(sandbox: Sandbox, helm_tmp: Path) -> None:
    docs = _template(sandbox, helm_tmp, _values("monitoring", helm_tmp))
    (configmap,) = _kind(docs, "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Canaries"}
    titles = {json.loads(text)["title"] for text in configmap["data"].values()}
    assert titles == {"ferrocanary / Canary verdicts", "ferrocanary / Python vs Rust"}
    (monitor,) = _kind(docs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True, "the canary's namespace label must survive"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (rule,) = _kind(docs, "PrometheusRule")
    shipped = yaml.safe_load((ROOT / "dashboards" / "rules" / "ferrocanary.rules.yml").read_text())
    assert rule["spec"] == shipped
    assert "{{ $labels.name }}" in json.dumps(rule["spec"])


# ----------------------------------------------------------------------------------- the API server


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_every_rendering_passes_the_api_servers_dry_run(
    sandbox: Sandbox, helm_tmp: Path, namespaces: dict[str, str], cluster_kinds: None, name: str
) -> None:
    values = _values(name, helm_tmp, ns1=namespaces["ns1"], ns2=namespaces["ns2"])
    rendered = _helm(
        sandbox, helm_tmp, "template", "fc", str(CHART), "-n", namespaces["rel"], "-f", str(values)
    )
    applied = _dry_run(sandbox, helm_tmp, rendered.stdout)
    kinds = {line.split("/", 1)[0] for line in applied.stdout.splitlines()}
    assert "deployment.apps" in kinds
    if name == "monitoring":
        assert {"servicemonitor.monitoring.coreos.com", "prometheusrule.monitoring.coreos.com"} <= kinds
    if name.startswith("peering"):
        assert "clusterkopfpeering.kopf.dev" in kinds
    # The NetworkPolicy is on unless switched off, and the API server accepts every form of it.
    assert ("networkpolicy.networking.k8s.io" in kinds) is (name != "no-network-policy")


SHARED_TEMPLATES = {
    "istio-mesh": {"preset": "istio"},
    "db-calls": {
        "kpis": [
            {
                "name": "db-calls-per-request",
                "type": "ratio",
                "numerator": 'db_queries_total{namespace="{{namespace}}",pod=~"{{pods}}"}',
                "denominator": 'http_requests_total{namespace="{{namespace}}",pod=~"{{pods}}"}',
                "target": 0.8,
            }
        ]
    },
}


def test_the_platforms_shared_metrictemplates_render_with_their_read_grant(
    sandbox: Sandbox, helm_tmp: Path, namespaces: dict[str, str], cluster_kinds: None
) -> None:
    shared = namespaces["ns2"]  # outside the watched namespaces: the chart grants get there
    values = helm_tmp / "shared.json"
    values.write_text(
        json.dumps(
            {
                "watchNamespaces": [namespaces["ns1"]],
                "metricTemplates": {"namespace": shared, "templates": SHARED_TEMPLATES},
            }
        )
    )
    rendered = _helm(
        sandbox, helm_tmp, "template", "fc", str(CHART), "-n", namespaces["rel"], "-f", str(values)
    )
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    templates = {d["metadata"]["name"]: d for d in _kind(docs, "MetricTemplate")}
    assert {name: t["spec"] for name, t in templates.items()} == SHARED_TEMPLATES  # placeholders kept
    assert {t["metadata"]["namespace"] for t in templates.values()} == {shared}
    grants = [r for r in _kind(docs, "Role") if r["metadata"]["namespace"] == shared]
    assert [g["rules"] for g in grants] == [
        [{"apiGroups": ["ferrocanary.io"], "resources": ["metrictemplates"], "verbs": ["get"]}]
    ]
    (deployment,) = _kind(docs, "Deployment")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FERROCANARY_SHARED_TEMPLATES_NAMESPACE"] == shared
    # the API server takes the templates as the MetricTemplate CRD's schema and CEL rules say
    sandbox.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(TEMPLATE_CRD))
    wait_established(sandbox, "metrictemplates.ferrocanary.io")
    applied = _dry_run(sandbox, helm_tmp, rendered.stdout)
    assert "metrictemplate.ferrocanary.io/istio-mesh" in applied.stdout
    # by default: none rendered, and the release namespace is the shared one
    default = _template(sandbox, helm_tmp, _values("defaults", helm_tmp))
    assert not _kind(default, "MetricTemplate")
    (deployment,) = _kind(default, "Deployment")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FERROCANARY_SHARED_TEMPLATES_NAMESPACE"] == "fc"


def test_the_workload_chart_and_its_rustcanary_pass_the_dry_run(
    sandbox: Sandbox, helm_tmp: Path, namespaces: dict[str, str], cluster_kinds: None
) -> None:
    def render(*settings: str) -> str:
        flags = [
            a for s in (*settings, f"canary.prometheusAddress={sandbox.prometheus_url}") for a in ("--set", s)
        ]
        chart = str(WORKLOAD_CHART)
        return _helm(
            sandbox, helm_tmp, "template", "textscore", chart, "-n", namespaces["ns1"], *flags
        ).stdout

    gateway = "canary.enabled=true,canary.routing=gatewayAPI,httpRoute.enabled=true,podMonitor.enabled=true"
    applied = _dry_run(sandbox, helm_tmp, render(gateway))
    assert "rustcanary.ferrocanary.io/scorer serverside-applied (server dry run)" in applied.stdout
    assert "httproute.gateway.networking.k8s.io/scorer" in applied.stdout
    assert "podmonitor.monitoring.coreos.com/textscore" in applied.stdout
    # The CRD's CEL rules judge the chart's RustCanary: a bad step list is refused, naming the field.
    refused = _dry_run(sandbox, helm_tmp, render("canary.enabled=true,canary.weights={50,10}"), check=False)
    assert refused.returncode != 0
    assert "spec.steps.weights must be strictly increasing" in refused.stderr


def _can(sandbox: Sandbox, helm_tmp: Path, sa: str, *args: str) -> bool:
    answer = _run(sandbox, helm_tmp, "kubectl", "auth", "can-i", f"--as={sa}", *args, check=False)
    return answer.stdout.strip() == "yes"


def test_helm_install_runs_the_operator_with_least_privilege(
    sandbox: Sandbox, helm_tmp: Path, namespaces: dict[str, str], rustcanary_crd: None
) -> None:
    rel, other = namespaces["rel"], namespaces["ns1"]
    release = f"fc{uuid.uuid4().hex[:6]}"
    # --take-ownership: the CRD is already in the cluster (applied with kubectl), as after an upgrade.
    _run(sandbox, helm_tmp, "helm", "install", release, str(CHART), "-n", rel, "--take-ownership",
         "--wait", "--timeout", "180s")  # fmt: skip
    try:
        deployment = json.loads(
            sandbox.kubectl("-n", rel, "get", "deploy", f"{release}-ferrocanary", "-o", "json")
        )
        available = {c["type"]: c["status"] for c in deployment["status"]["conditions"]}
        assert available["Available"] == "True"
        assert deployment["status"]["readyReplicas"] == 1
        sa = f"system:serviceaccount:{rel}:{release}-ferrocanary"
        granted = [
            ("patch", "httproutes.gateway.networking.k8s.io", "-n", other),
            ("update", "httproutes.gateway.networking.k8s.io", "-n", other),
            ("patch", "rustcanaries.ferrocanary.io", "--subresource=status", "-n", other),
            ("watch", "rustcanaries.ferrocanary.io", "--all-namespaces"),
            ("patch", "deployments.apps", "--subresource=scale", "-n", other),
            ("create", "events", "-n", other),
            ("list", "customresourcedefinitions.apiextensions.k8s.io"),
            # the readiness gate: the candidate's availability and its pods' container statuses
            ("get", "deployments.apps", "-n", other),
            ("list", "pods", "-n", other),
        ]
        refused = [
            ("list", "secrets", "--all-namespaces"),
            ("get", "secrets", "-n", other),
            ("delete", "namespaces"),
            ("delete", "rustcanaries.ferrocanary.io", "-n", other),
            ("patch", "deployments.apps", "-n", other),
            ("create", "pods", "-n", other),
            ("get", "pods", "--subresource=log", "-n", other),
            ("create", "pods", "--subresource=exec", "-n", other),
            ("list", "httproutes.gateway.networking.k8s.io", "-n", other),
            # the Istio and NGINX routers' grants are opt-in (rbac.istio, rbac.nginx)
            ("update", "virtualservices.networking.istio.io", "-n", other),
            ("create", "ingresses.networking.k8s.io", "-n", other),
            ("get", "ingresses.networking.k8s.io", "-n", other),
            ("get", "services", "-n", other),
            ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
        ]
        install_istio_crd(sandbox)  # so "no" for virtualservices is RBAC's answer, not discovery's
        for check in granted:
            assert _can(sandbox, helm_tmp, sa, *check), f"cannot {' '.join(check)}"
        for check in refused:
            assert not _can(sandbox, helm_tmp, sa, *check), f"can {' '.join(check)}"
        notes = _run(sandbox, helm_tmp, "helm", "get", "notes", release, "-n", rel).stdout
        assert "It handles RustCanaries in every namespace." in notes
    finally:
        _run(sandbox, helm_tmp, "helm", "uninstall", release, "-n", rel, "--wait", check=False)
    # crd.keep: uninstalling the operator never deletes the RustCanaries with their CRD.
    assert sandbox.kubectl("get", "crd", "rustcanaries.ferrocanary.io", "-o", "name").strip()


def test_a_namespaced_install_reads_only_its_named_secrets_in_its_namespaces(
    sandbox: Sandbox, helm_tmp: Path, namespaces: dict[str, str], rustcanary_crd: None
) -> None:
    rel, watched, unwatched = namespaces["rel"], namespaces["ns1"], namespaces["ns2"]
    release = f"fc{uuid.uuid4().hex[:6]}"
    _run(sandbox, helm_tmp, "helm", "install", release, str(CHART), "-n", rel, "--take-ownership",
         "--set", "crd.create=false", "--set", f"watchNamespaces={{{watched}}}",
         "--set", "prometheus.tokenSecret.name=prom-token", "--set", "rbac.secretNames={other-token}",
         "--set", "rbac.istio=true", "--set", "rbac.nginx=true",
         "--wait", "--timeout", "180s")  # fmt: skip
    try:
        sa = f"system:serviceaccount:{rel}:{release}-ferrocanary"
        assert _can(sandbox, helm_tmp, sa, "patch", "rustcanaries.ferrocanary.io", "-n", watched)
        assert _can(sandbox, helm_tmp, sa, "get", "secrets/prom-token", "-n", watched)
        assert _can(sandbox, helm_tmp, sa, "get", "secrets/other-token", "-n", watched)
        assert not _can(sandbox, helm_tmp, sa, "get", "secrets/default-token", "-n", watched)
        assert not _can(sandbox, helm_tmp, sa, "list", "secrets", "-n", watched)
        assert not _can(sandbox, helm_tmp, sa, "watch", "secrets", "-n", watched)
        assert not _can(sandbox, helm_tmp, sa, "get", "secrets/prom-token", "-n", unwatched)
        assert not _can(sandbox, helm_tmp, sa, "patch", "rustcanaries.ferrocanary.io", "-n", unwatched)
        assert not _can(sandbox, helm_tmp, sa, "list", "rustcanaries.ferrocanary.io", "--all-namespaces")
        assert not _can(
            sandbox, helm_tmp, sa, "patch", "httproutes.gateway.networking.k8s.io", "-n", unwatched
        )
        # Istio and NGINX routing, enabled: exactly the verbs their routers call, only where watched.
        install_istio_crd(sandbox)  # kubectl auth can-i resolves the resource through discovery
        vs, ing = "virtualservices.networking.istio.io", "ingresses.networking.k8s.io"
        for verb, resource in [
            ("get", vs),
            ("update", vs),
            *((v, ing) for v in ("get", "create", "update", "delete")),
        ]:
            assert _can(sandbox, helm_tmp, sa, verb, resource, "-n", watched), f"cannot {verb} {resource}"
            assert not _can(sandbox, helm_tmp, sa, verb, resource, "-n", unwatched), f"can {verb} {resource}"
        for verb, resource in [("patch", vs), ("list", vs), ("patch", ing), ("list", ing), ("watch", ing)]:
            assert not _can(sandbox, helm_tmp, sa, verb, resource, "-n", watched), f"can {verb} {resource}"
    finally:
        _run(sandbox, helm_tmp, "helm", "uninstall", release, "-n", rel, "--wait", check=False)


def test_the_charts_defaults_reach_every_rustcanary_through_the_api_server(
    sandbox: Sandbox, helm_tmp: Path, namespaces: dict[str, str], rustcanary_crd: None
) -> None:
    """prometheus.address and pricing become schema defaults: the API server fills them in."""
    rel, ns = namespaces["rel"], namespaces["ns1"]
    release = f"fc{uuid.uuid4().hex[:6]}"
    try:
        _run(sandbox, helm_tmp, "helm", "install", release, str(CHART), "-n", rel, "--take-ownership",
             "--set", f"prometheus.address={sandbox.prometheus_url}", "--set", "pricing.cpuHour=0.05",
             "--set", "dashboards.enabled=false")  # fmt: skip
        canary = analysis_only(ns)
        sandbox.kubectl("apply", "-f", "-", input_text=json.dumps(canary))
        stored = json.loads(sandbox.kubectl("-n", ns, "get", "rustcanary", "scorer", "-o", "json"))["spec"]
        assert stored["analysis"]["prometheus"]["address"] == sandbox.prometheus_url
        assert stored["analysis"]["pricing"]["cpuHour"] == 0.05
        assert stored["analysis"]["pricing"]["memoryGiBHour"] == 0.004445
        sandbox.kubectl("-n", ns, "delete", "rustcanary", "scorer", "--wait=false")
    finally:
        _run(sandbox, helm_tmp, "helm", "uninstall", release, "-n", rel, check=False)
        # Put the CRD back to the single source for the other tests of this session.
        sandbox.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_SOURCE))


def test_the_workload_chart_installs_its_builds_and_canary(
    sandbox: Sandbox, helm_tmp: Path, namespaces: dict[str, str], rustcanary_crd: None
) -> None:
    ns = namespaces["ns1"]
    settings = ("canary.enabled=true", f"canary.prometheusAddress={sandbox.prometheus_url}")
    flags = [a for s in settings for a in ("--set", s)]
    _helm(
        sandbox,
        helm_tmp,
        "install",
        "textscore",
        str(WORKLOAD_CHART),
        "-n",
        ns,
        *flags,
        "--wait",
        "--timeout",
        "180s",
    )
    deployments = json.loads(sandbox.kubectl("-n", ns, "get", "deploy", "-o", "json"))["items"]
    tracks = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]["track"] for d in deployments
    }
    assert tracks == {"scorer-python": "baseline", "scorer-rust": "candidate"}
    assert all(d["status"].get("availableReplicas") == 2 for d in deployments)
    canary = json.loads(sandbox.kubectl("-n", ns, "get", "rustcanary", "scorer", "-o", "json"))["spec"]
    assert canary["trafficRouting"] == {"replicas": {"total": 4}}
    assert canary["analysis"]["prometheus"]["address"] == sandbox.prometheus_url
    # The API server filled in the default KPI table (docs/statistics.md): the chart need not repeat it.
    assert [k["name"] for k in canary["analysis"]["kpis"]] == [
        "p99-latency",
        "throughput-per-cpu",
        "cost-per-request",
        "memory-faults",
    ]
    _helm(sandbox, helm_tmp, "uninstall", "textscore", "-n", ns, "--wait")
