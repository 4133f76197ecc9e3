"""The Helm charts' copies, documentation and image, checked without a cluster.

The chart carries copies of the CRD, the dashboards and the rules (Helm reads files inside the chart
only): ``charts/sync.py --check`` fails when one drifted. Every value is documented in the README
and typed in values.schema.json. The operator image and the chart agree on the user, the port and
the command line. Rendering with the real helm is in tests/integration/test_chart.py.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from charts import sync
from ferrocanary import __version__
from ferrocanary.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "ferrocanary"
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def _crd_pricing(name: str) -> Any:
    crd = yaml.safe_load((ROOT / "crds" / "rustcanaries.ferrocanary.io.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    pricing = schema["properties"]["spec"]["properties"]["analysis"]["properties"]["pricing"]
    return pricing["properties"][name].get("default")


def test_the_charts_copies_match_their_sources() -> None:
    stale = [str(p.relative_to(ROOT)) for p in sync.stale()]
    assert not stale, f"{stale} drifted: run `python charts/sync.py`"


def test_every_value_is_documented_in_the_readme() -> None:
    readme = (CHART / "README.md").read_text()
    table = readme.split(sync.TABLE_START, 1)[1].split(sync.TABLE_END, 1)[0]
    documented = set(re.findall(r"^\| `([\w.]+)` \|", table, re.MULTILINE))
    for leaf in sync.leaf_paths(VALUES):
        parts = leaf.split(".")
        covering = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        assert covering & documented, f"values.yaml key {leaf} is not in the README's table"
    for path in documented:
        node: Any = VALUES
        for key in path.split("."):
            assert key in (node if isinstance(node, dict) else {}), (
                f"README documents {path}, not in values.yaml"
            )
            node = node[key]


def test_the_values_schema_covers_every_key_and_refuses_unknown_ones() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    assert set(VALUES) <= set(schema["properties"])
    for key, value in VALUES.items():
        sub = schema["properties"][key]
        if isinstance(value, dict) and sub.get("additionalProperties") is False:
            assert set(value) <= set(sub["properties"]), key


def test_default_pricing_is_the_crds_so_the_default_render_is_the_crd_itself() -> None:
    assert _crd_pricing("cpuHour") == VALUES["pricing"]["cpuHour"]
    assert _crd_pricing("memoryGiBHour") == VALUES["pricing"]["memoryGiBHour"]
    assert _crd_pricing("monthlyRequests") is None
    assert not VALUES["pricing"]["monthlyRequests"]
    assert not VALUES["prometheus"]["address"]
    assert not VALUES["prometheus"]["tokenSecret"]["name"]


def test_the_crd_template_puts_the_values_into_the_schema_defaults() -> None:
    template = (CHART / "templates" / "crd.yaml").read_text()
    assert template.startswith("{{- /* GENERATED")
    assert "{{- if .Values.crd.create }}" in template
    for expression in (
        "default: {{ .Values.pricing.cpuHour | float64 }}",
        "default: {{ .Values.pricing.memoryGiBHour | float64 }}",
        "default: {{ .Values.prometheus.address | quote }}",
        "{{- if .Values.prometheus.tokenSecret.name }}",
        "helm.sh/resource-policy: keep",
    ):
        assert expression in template
    assert "__FC_" not in template


def test_a_crd_that_helm_would_template_is_refused() -> None:
    with pytest.raises(sync.SyncError, match="Helm would take"):
        sync.crd_template("kind: CustomResourceDefinition\ndescription: '{{ oops }}'\n")


def test_the_chart_version_is_the_packages() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"] == __version__


def _final_stage(dockerfile: str) -> list[str]:
    lines = [ln.strip() for ln in dockerfile.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    last_from = max(i for i, ln in enumerate(lines) if ln.startswith("FROM "))
    return lines[last_from:]


def test_the_image_is_multi_stage_slim_and_pinned() -> None:
    dockerfile = (ROOT / "operator" / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert len(froms) >= 2, "build and runtime stages"
    version = re.search(r"^ARG PYTHON_VERSION=(\d+\.\d+\.\d+)$", dockerfile, re.MULTILINE)
    assert version, "the Python base image is pinned to a patch release"
    # The base is a build argument (a machine without registry access passes a local image) whose
    # default is the public slim image at that patch release.
    assert "\nARG PYTHON_IMAGE=python:${PYTHON_VERSION}-slim-bookworm\n" in dockerfile
    for image in froms:
        assert image == "${PYTHON_IMAGE}", image
    assert not any("gcc" in ln or "build-essential" in ln for ln in _final_stage(dockerfile))


def test_the_image_runs_as_the_non_root_user_the_chart_expects() -> None:
    stage = _final_stage((ROOT / "operator" / "Dockerfile").read_text())
    user = next(ln.split()[1] for ln in stage if ln.startswith("USER "))
    pod = VALUES["podSecurityContext"]
    assert user == f"{pod['runAsUser']}:{pod['runAsGroup']}"
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] != 0
    assert VALUES["securityContext"]["readOnlyRootFilesystem"] is True
    assert f"EXPOSE {VALUES['metrics']['port']}" in stage


def test_the_images_command_is_a_valid_ferrocanary_run() -> None:
    stage = _final_stage((ROOT / "operator" / "Dockerfile").read_text())
    entrypoint = json.loads(next(ln[len("ENTRYPOINT ") :] for ln in stage if ln.startswith("ENTRYPOINT ")))
    command = json.loads(next(ln[len("CMD ") :] for ln in stage if ln.startswith("CMD ")))
    assert entrypoint == ["ferrocanary"]
    args = cli_main.build_parser().parse_args(command)
    assert args.command == "run"
    assert args.metrics_port == VALUES["metrics"]["port"]


def test_the_build_context_keeps_what_the_dockerfile_copies() -> None:
    dockerfile = (ROOT / "operator" / "Dockerfile").read_text()
    ignore = (ROOT / "operator" / "Dockerfile.dockerignore").read_text().splitlines()
    kept = {ln[1:] for ln in ignore if ln.startswith("!")}
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.MULTILINE):
        for path in source.split():
            assert path.rstrip("/") in kept, f"{path} is copied but excluded from the context"
        assert all((ROOT / p).exists() for p in source.split())


def _rbac_rules() -> dict[str, list[str]]:
    """resource -> verbs, as rbac.yaml's rule blocks grant them (the template is plain YAML there)."""
    text = (CHART / "templates" / "rbac.yaml").read_text()
    pairs = re.findall(r"resources: \[([\w/]+)\]\n\s+verbs: \[([\w, ]+)\]", text)
    return {resource: [v.strip() for v in verbs.split(",")] for resource, verbs in pairs}


@pytest.mark.parametrize(
    ("resource", "value", "verbs"),
    [
        ("httproutes", "gatewayAPI", ["get", "patch", "update"]),
        ("virtualservices", "istio", ["get", "update"]),
        ("ingresses", "nginx", ["get", "create", "update", "delete"]),
    ],
)
def test_each_routers_grant_matches_the_readme_behind_its_own_switch(
    resource: str, value: str, verbs: list[str]
) -> None:
    assert _rbac_rules()[resource] == verbs
    text = (CHART / "templates" / "rbac.yaml").read_text()
    gate = text.index(f"{{{{- if .Values.rbac.{value} }}}}")
    assert gate < text.index(f"resources: [{resource}]") < text.index("{{- end }}", gate)
    assert value in VALUES["rbac"]
    readme = (CHART / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith(f"| `{resource}`"))
    assert f"`rbac.{value}`" in row
    assert f"| {', '.join(verbs)} |" in row


def test_the_istio_and_nginx_grants_are_opt_in() -> None:
    """Writing Ingresses can redirect any host's traffic: nobody gets it without asking."""
    assert VALUES["rbac"]["istio"] is False
    assert VALUES["rbac"]["nginx"] is False


# ----------------------------------------------------------------------- NetworkPolicy and /metrics


def test_the_network_policy_is_on_by_default_and_closes_both_directions() -> None:
    policy = VALUES["networkPolicy"]
    assert policy["enabled"] is True
    template = (CHART / "templates" / "networkpolicy.yaml").read_text()
    assert "{{- if .Values.networkPolicy.enabled }}" in template
    assert 'include "ferrocanary.labels"' in template
    assert 'include "ferrocanary.selectorLabels"' in template
    # Both directions isolated: only what the rules list gets through.
    assert re.search(r"policyTypes:\n\s+- Ingress\n\s+- Egress\n", template)


def test_by_default_only_the_monitoring_namespace_may_scrape_metrics() -> None:
    metrics = VALUES["networkPolicy"]["metrics"]
    assert metrics["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    template = (CHART / "templates" / "networkpolicy.yaml").read_text()
    ingress = template.split("  ingress:", 1)[1].split("  egress:", 1)[0]
    assert "port: metrics" in ingress, "ingress is the /metrics port alone"
    assert ingress.count("- ports:") == 1


def test_by_default_egress_is_dns_the_api_server_and_prometheus() -> None:
    policy = VALUES["networkPolicy"]
    # The API server by address and port (NetworkPolicy cannot name it): its usual ports only.
    assert {entry["port"] for entry in policy["apiServer"]} == {443, 6443}
    assert all(set(entry) == {"cidr", "port"} for entry in policy["apiServer"])
    assert policy["prometheus"]["ports"] == [9090]
    assert policy["prometheus"]["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert policy["dns"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert policy["extraEgress"] == []
    readme = (CHART / "README.md").read_text().splitlines()
    row = next(line for line in readme if line.startswith("| `networkPolicy.apiServer` |"))
    assert "cannot name the API server" in row, "the README says why it is a list of addresses"


def test_the_network_policy_values_are_typed_in_the_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["networkPolicy"]
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(VALUES["networkPolicy"])
    api = schema["properties"]["apiServer"]["items"]
    assert api["required"] == ["cidr", "port"]
    for entry in VALUES["networkPolicy"]["apiServer"]:
        assert re.fullmatch(api["properties"]["cidr"]["pattern"], entry["cidr"])


def test_the_metrics_address_reaches_the_operator_as_its_environment() -> None:
    assert VALUES["metrics"]["address"] == "0.0.0.0"
    deployment = (CHART / "templates" / "deployment.yaml").read_text()
    assert (
        "- name: FERROCANARY_METRICS_ADDRESS\n              value: {{ .Values.metrics.address | quote }}"
        in deployment
    )
    assert "--metrics-address" not in deployment, "one source for the address: the environment"
    startup = (ROOT / "operator" / "ferrocanary" / "handlers" / "startup.py").read_text()
    assert 'os.environ.get("FERROCANARY_METRICS_ADDRESS"' in startup
    pattern = json.loads((CHART / "values.schema.json").read_text())["properties"]["metrics"]["properties"][
        "address"
    ]["pattern"]
    for good in ("0.0.0.0", "127.0.0.1", "::", "::1", "fd00::1"):
        assert re.fullmatch(pattern, good), good
    for bad in ("", "localhost", "0.0.0.0; rm -rf /", "http://x"):
        assert not re.fullmatch(pattern, bad), bad


def test_the_security_pages_rbac_table_is_the_charts() -> None:
    """docs/security.md's table of the operator's rights names exactly what rbac.yaml grants."""
    page = (ROOT / "docs" / "security.md").read_text()
    rows = re.findall(r"^\| `([\w/]+)` \| [\w.]+ \| ([\w, ]+) \|", page, re.MULTILINE)
    table = {resource: [v.strip() for v in verbs.split(",")] for resource, verbs in rows}
    granted = {**_rbac_rules(), "secrets": ["get"]}
    assert table == granted
    text = (CHART / "templates" / "rbac.yaml").read_text()
    assert re.search(r"resources: \[secrets\]\n\s+resourceNames: .+\n\s+verbs: \[get\]\n", text)
