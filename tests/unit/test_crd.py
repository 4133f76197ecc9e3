"""The RustCanary CRD file: what ``kubectl`` users get (names, columns, defaults, rules), and that it
agrees with the code that reads it. The apiserver itself enforces it in tests/integration."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ferrocanary.model import analysis
from ferrocanary.model import spec as canary_spec
from ferrocanary.policy import state
from ferrocanary.routing import registry

ROOT = Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((ROOT / "crds" / "rustcanaries.ferrocanary.io.yaml").read_text())
VERSION = CRD["spec"]["versions"][0]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]
SPEC = SCHEMA["properties"]["spec"]
ANALYSIS = SPEC["properties"]["analysis"]
EXAMPLES = sorted((ROOT / "crds" / "examples").glob("*.yaml"))


def defaults(node: dict[str, Any]) -> Any:
    """What the apiserver's defaulting produces for an object that sets nothing (recursively)."""
    if "default" in node and not isinstance(node["default"], dict):
        return node["default"]
    if node.get("type") == "object":
        out = {k: defaults(v) for k, v in node.get("properties", {}).items()}
        return {k: v for k, v in out.items() if v is not None}
    return None


def test_names_scope_and_status_subresource() -> None:
    names = CRD["spec"]["names"]
    assert (CRD["spec"]["group"], names["kind"], CRD["spec"]["scope"]) == (
        "ferrocanary.io",
        "RustCanary",
        "Namespaced",
    )
    assert "rc" not in names["shortNames"]  # taken by ReplicationController
    assert "rcanary" in names["shortNames"]
    assert VERSION["name"] == "v1alpha1"
    assert VERSION["subresources"] == {"status": {}}


def test_printer_columns_show_phase_weight_verdict_p99_and_age() -> None:
    columns = {c["name"]: c["jsonPath"] for c in VERSION["additionalPrinterColumns"] if not c.get("priority")}
    assert columns == {
        "Phase": ".status.phase",
        "Weight": ".status.weight",
        "Verdict": ".status.verdict",
        "P99 Ratio": ".status.p99Ratio",
        "Age": ".metadata.creationTimestamp",
    }


def test_status_phases_are_exactly_the_state_machines() -> None:
    enum = SCHEMA["properties"]["status"]["properties"]["phase"]["enum"]
    assert sorted(enum) == sorted(p.value for p in state.Phase)


def test_schema_defaults_are_the_models_defaults() -> None:
    """An empty spec.analysis in the cluster must mean the same analysis as in `ferrocanary analyze`."""
    defaulted = defaults(ANALYSIS)
    defaulted["kpis"] = ANALYSIS["properties"]["kpis"]["default"]
    defaulted["guards"] = ANALYSIS["properties"]["guards"]["default"]
    assert analysis.settings_from_spec(defaulted) == analysis.AnalysisSettings()
    plan = canary_spec.parse_plan({"steps": defaults(SPEC["properties"]["steps"]), "analysis": defaulted})
    assert plan == state.Plan()


DURATION = re.compile(ANALYSIS["properties"]["interval"]["pattern"])


@pytest.mark.parametrize("text", ["5s", "1m", "2h", "1h30m", "90s", "1h0m5s"])
def test_durations_the_crd_accepts_parse_to_the_same_seconds(text: str) -> None:
    assert DURATION.fullmatch(text)
    assert analysis.parse_duration(text) > 0


@pytest.mark.parametrize("text", ["5", "1x", "m1", "1.5m", "5s1m", "-1s", "1d"])
def test_malformed_durations_are_refused_by_the_pattern(text: str) -> None:
    assert not DURATION.fullmatch(text)


def test_every_cel_message_names_the_field_it_checks() -> None:
    rules: list[dict[str, Any]] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            rules.extend(node.get("x-kubernetes-validations", []))
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(SPEC)
    assert len(rules) >= 12
    for rule in rules:
        assert rule["message"].startswith("spec."), rule


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_read_by_the_operator_as_written(example: Path) -> None:
    documents = [d for d in yaml.safe_load_all(example.read_text()) if d]
    body = next(d for d in documents if d["kind"] == "RustCanary")  # a MetricTemplate may come first
    assert body["apiVersion"] == "ferrocanary.io/v1alpha1"
    spec = body["spec"]
    analysis.settings_from_spec(spec["analysis"])
    canary_spec.parse_plan(spec)
    assert registry.provider_of(spec["trafficRouting"]) in registry.PROVIDERS
