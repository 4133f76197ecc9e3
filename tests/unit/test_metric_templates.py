"""A MetricTemplate kept once in a namespace and referenced by several RustCanaries.

The operator reads the referenced template on each tick and runs the queries it names (the source
is asked for the template's preset); the canary's own fields override it; a template that is not
there, or whose PromQL escapes its arm, refuses the canary naming the field.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from ferrocanary.cli import main as cli_main
from ferrocanary.kube import canaries, rest
from ferrocanary.metrics import protocol
from ferrocanary.model import metrics as metrics_spec
from ferrocanary.model import recording
from tests.fakes.metrics import ModelSource
from tests.fakes.world import NS, World, spec
from tests.support import arms

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = f"/apis/{canaries.GROUP}/{canaries.VERSION}/namespaces/{NS}/metrictemplates/mesh"


class Recorder(ModelSource):
    """The model source, keeping the windows it was asked for (and so the queries the operator resolved)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.windows: list[protocol.Window] = []

    def fetch(self, window: protocol.Window) -> recording.Recording:
        self.windows.append(window)
        return super().fetch(window)


def _world(metrics: dict[str, Any], template: dict[str, Any] | None) -> tuple[World, Recorder]:
    source = Recorder(arms.PYTHON, arms.RUST_WIN)
    analysis = {**spec()["analysis"], "metrics": metrics}
    world = World(source, spec(analysis=analysis))
    if template is not None:
        world.kube.add(
            TEMPLATE_PATH, {"kind": "MetricTemplate", "metadata": {"name": "mesh"}, "spec": template}
        )
    return world, source


def test_the_operator_runs_the_referenced_templates_queries() -> None:
    world, source = _world({"templateRef": {"name": "mesh"}}, {"preset": "istio"})
    for _ in range(6):
        world.tick()
    assert world.status["phase"] == "Progressing", world.status.get("verdictReason")
    assert source.windows
    requests = source.windows[-1].arm_queries("candidate").requests
    assert requests.startswith("istio_requests_total{")
    assert 'destination_workload="rs"' in requests


def test_the_canarys_own_fields_override_the_template_signal_by_signal() -> None:
    template = {
        "preset": "istio",
        "templates": {"cpu": 'a_cpu_total{namespace="{{namespace}}",pod=~"{{pods}}"}'},
    }
    own = {"templateRef": {"name": "mesh"}, "templates": {"memory": "sum(m{{{selector}}})"}}
    merged = metrics_spec.with_template({"metrics": own}, template)["metrics"]
    assert merged["preset"] == "istio"
    assert set(merged["templates"]) == {"cpu", "memory"}
    assert "templateRef" not in merged


def test_a_missing_template_refuses_the_canary_naming_the_field() -> None:
    world, _ = _world({"templateRef": {"name": "mesh"}}, None)
    world.tick()
    assert world.status["phase"] == "Invalid"
    assert (
        "spec.analysis.metrics.templateRef.name: MetricTemplate shop/mesh not found"
        in world.status["verdictReason"]
    )
    assert world.replicas() == (10, 0)


SHARED = "platform-metrics"


def _shared_world(namespace: str) -> tuple[World, Recorder]:
    """A canary referencing the MetricTemplate ``mesh`` of ``namespace``; the platform's shared one
    (in SHARED, as the chart renders it) holds the istio preset."""
    world, source = _world({"templateRef": {"name": "mesh", "namespace": namespace}}, None)
    world.kube.add(
        f"/apis/{canaries.GROUP}/{canaries.VERSION}/namespaces/{SHARED}/metrictemplates/mesh",
        {
            "kind": "MetricTemplate",
            "metadata": {"name": "mesh", "namespace": SHARED},
            "spec": {"preset": "istio"},
        },
    )
    world.deps = dataclasses.replace(world.deps, shared_templates_namespace=SHARED)
    return world, source


def test_a_canary_uses_the_platforms_shared_template_by_namespace() -> None:
    world, source = _shared_world(SHARED)
    for _ in range(6):
        world.tick()
    assert world.status["phase"] == "Progressing", world.status.get("verdictReason")
    # resolved for the canary's own namespace and arms, whoever wrote the template
    requests = source.windows[-1].arm_queries("candidate").requests
    assert requests.startswith("istio_requests_total{")
    assert f'destination_workload_namespace="{NS}"' in requests


def test_a_template_in_any_other_namespace_refuses_the_canary_naming_the_field() -> None:
    world, _ = _shared_world("another-team")
    world.tick()
    assert world.status["phase"] == "Invalid"
    reason = world.status["verdictReason"]
    assert "spec.analysis.metrics.templateRef.namespace: another-team is neither" in reason
    assert SHARED in reason
    assert world.replicas() == (10, 0)


def test_a_template_whose_promql_escapes_the_arm_refuses_the_canary() -> None:
    world, _ = _world({"templateRef": {"name": "mesh"}}, {"templates": {"requests": 'x{namespace="other"}'}})
    world.tick()
    assert world.status["phase"] == "Invalid"
    assert "spec.analysis.metrics.templates.requests" in world.status["verdictReason"]


def test_the_metrictemplate_crd_holds_the_rustcanarys_metrics_schema() -> None:
    def schema(path: Path) -> Any:
        return yaml.safe_load(path.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]

    canary = schema(ROOT / "crds" / "rustcanaries.ferrocanary.io.yaml")
    metrics = canary["properties"]["spec"]["properties"]["analysis"]["properties"]["metrics"]
    template = schema(ROOT / "crds" / "metrictemplates.ferrocanary.io.yaml")["properties"]["spec"]
    assert {k: v for k, v in metrics["properties"].items() if k != "templateRef"} == template["properties"]
    assert metrics["x-kubernetes-validations"] == template["x-kubernetes-validations"]
    chart_copy = ROOT / "charts" / "ferrocanary" / "crds" / "metrictemplates.ferrocanary.io.yaml"
    assert chart_copy.read_text() == (ROOT / "crds" / "metrictemplates.ferrocanary.io.yaml").read_text()


def test_ferrocanary_queries_reads_the_template_from_the_same_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    documents = [
        {"apiVersion": "ferrocanary.io/v1alpha1", "kind": "MetricTemplate", "metadata": {"name": "mesh"}},
        {
            "apiVersion": "ferrocanary.io/v1alpha1",
            "kind": "RustCanary",
            "metadata": {"name": "c", "namespace": "shop"},
            "spec": {**spec(), "analysis": {"metrics": {"templateRef": {"name": "mesh"}}}},
        },
    ]
    documents[0]["spec"] = {"preset": "istio"}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    assert cli_main.main(["queries", "--canary", str(path), "--json"]) == 0
    assert '"preset": "istio"' in capsys.readouterr().out
    path.write_text(yaml.safe_dump(documents[1]))
    assert cli_main.main(["queries", "--canary", str(path)]) == 2
    assert "MetricTemplate mesh not found" in capsys.readouterr().err


def test_a_template_the_operator_may_not_read_is_named_with_the_rbac_it_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world, _ = _world({"templateRef": {"name": "mesh"}}, {"preset": "istio"})
    real_get = world.kube.get

    def forbidden(path: str) -> dict[str, Any]:
        if path == TEMPLATE_PATH:
            raise rest.KubeError(403, "forbidden", path)
        return real_get(path)

    monkeypatch.setattr(world.kube, "get", forbidden)
    world.tick()
    assert world.status["phase"] == "Invalid"
    assert "needs get on metrictemplates" in world.status["verdictReason"]
