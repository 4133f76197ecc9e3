"""The typed RustCanary spec: defaults, the fields it refuses (named), and the lenient routing view."""

from __future__ import annotations

import pytest

from ferrocanary.model import spec as canary_spec

FULL = {
    "baseline": {"deployment": "scorer-python", "service": "scorer-python"},
    "candidate": {"deployment": "scorer-rust", "service": "scorer-rust"},
    "service": {"name": "scorer", "port": 8080},
    "trafficRouting": {"gatewayAPI": {"httpRoute": "scorer"}},
    "steps": {"weights": [5, 50], "minDwell": "2m"},
    "analysis": {
        "interval": "30s",
        "maxDuration": "1h",
        "selectors": {"baseline": 'job="py"', "candidate": ""},
        "prometheus": {
            "address": "http://prom:9090",
            "secretRef": {"name": "prom-token"},
            "timeout": "5s",
            "lag": "15s",
            "insecureSkipVerify": True,
        },
    },
    "promotion": {"mode": "manual", "scaleDownBaseline": True},
    "rollback": {"scaleDownCandidate": True},
}


def test_a_full_spec_reads_into_typed_values() -> None:
    spec = canary_spec.parse(FULL)
    assert spec.baseline == canary_spec.Arm("scorer-python", "scorer-python")
    assert spec.candidate == canary_spec.Arm("scorer-rust", "scorer-rust")
    assert spec.service == canary_spec.ServicePort("scorer", 8080)
    assert spec.traffic_routing == {"gatewayAPI": {"httpRoute": "scorer"}}
    assert spec.plan == canary_spec.Plan((5, 50), 120.0, 3600.0, manual_promotion=True)
    assert spec.settings.interval_seconds == 30.0
    assert spec.prometheus == canary_spec.PrometheusSpec(
        "http://prom:9090", "prom-token", "token", 5.0, 15.0, verify_tls=False
    )
    assert spec.selectors == {"baseline": 'job="py"'}  # an empty selector means the default
    assert spec.scale_down_baseline
    assert spec.scale_down_candidate
    assert spec.analysis_source == FULL["analysis"]


def test_an_empty_spec_takes_every_default() -> None:
    spec = canary_spec.parse({})
    assert spec.plan == canary_spec.Plan()
    assert spec.prometheus == canary_spec.PrometheusSpec()
    assert spec.prometheus.lag_seconds == 30.0
    assert spec.prometheus.timeout_seconds == 10.0
    assert not spec.scale_down_baseline
    assert spec.traffic_routing == {}


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"steps": {"weights": [10, 10]}}, r"spec\.steps\.weights"),
        ({"steps": {"minDwell": "soon"}}, r"spec\.steps\.minDwell"),
        ({"promotion": {"mode": "yolo"}}, r"spec\.promotion\.mode"),
        (
            {"analysis": {"kpis": [{"name": "x", "type": "nope", "target": 1}]}},
            r"spec\.analysis\.kpis\[0\]\.type",
        ),
        ({"analysis": {"prometheus": {"timeout": "0s"}}}, r"spec\.analysis\.prometheus\.timeout"),
        ({"analysis": {"prometheus": {"lag": "a while"}}}, r"spec\.analysis\.prometheus\.lag"),
        ({"analysis": {"prometheus": {"lag": "99999999999999h"}}}, r"spec\.analysis\.prometheus\.lag"),
        (
            {"analysis": {"prometheus": {"lag": "2m"}}},
            r"spec\.analysis\.prometheus\.lag: must be shorter than",
        ),
        ({"analysis": {"kpis": []}}, r"spec\.analysis\.kpis: needs at least one KPI"),
        ({"analysis": "1m"}, r"spec\.analysis: expected an object"),
        ({"baseline": "py"}, r"spec\.baseline: expected an object"),
    ],
)
def test_what_the_policy_or_judge_cannot_use_is_refused_naming_the_field(
    patch: dict[str, object], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        canary_spec.parse({**FULL, **patch})


def test_the_routing_view_of_a_refused_spec_still_knows_where_traffic_goes() -> None:
    broken = {**FULL, "steps": {"weights": [50, 5]}}
    with pytest.raises(ValueError, match="weights"):
        canary_spec.parse(broken)
    view = canary_spec.parse_routing(broken)
    assert view.baseline.deployment == "scorer-python"
    assert view.traffic_routing == FULL["trafficRouting"]
    assert view.scale_down_candidate


HOSTILE_NAMES = [
    "../../kube-system/deployments/coredns",
    "coredns/scale",
    "a?b=c",
    "UPPER",
    "with space",
    "x" * 254,
    "",
    "bad\x1b[31m",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
@pytest.mark.parametrize(
    ("where", "field"),
    [
        (("baseline", "deployment"), r"spec\.baseline\.deployment"),
        (("candidate", "deployment"), r"spec\.candidate\.deployment"),
        (("baseline", "service"), r"spec\.baseline\.service"),
        (("service", "name"), r"spec\.service\.name"),
    ],
)
def test_a_name_that_could_leave_the_namespace_is_refused_naming_the_field(
    name: str, where: tuple[str, str], field: str
) -> None:
    section, key = where
    hostile = {**FULL, section: {**FULL[section], key: name}}
    with pytest.raises(ValueError, match=field):
        canary_spec.parse(hostile)
    with pytest.raises(ValueError, match=field):
        canary_spec.parse_routing(hostile)  # not even traffic is moved with it


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_token_secret_name_is_refused(name: str) -> None:
    prometheus = {**FULL["analysis"]["prometheus"], "secretRef": {"name": name}}
    with pytest.raises(ValueError, match=r"spec\.analysis\.prometheus\.secretRef\.name"):
        canary_spec.parse({**FULL, "analysis": {**FULL["analysis"], "prometheus": prometheus}})


@pytest.mark.parametrize(
    "selector",
    [
        'namespace="shop"}) or vector(1) or up{a="1"',  # ends the matcher, runs a query of its own
        'a="1"} or count(up{',
        "namespace=shop",  # unquoted
        'namespace="shop",',
        'track="candidate"\x1b[31m',
        '"x"="1"',
    ],
)
def test_a_selector_that_is_not_label_matchers_is_refused_naming_the_field(selector: str) -> None:
    analysis = {**FULL["analysis"], "selectors": {"candidate": selector}}
    with pytest.raises(
        ValueError, match=r"spec\.analysis\.selectors\.candidate: must be PromQL label matchers"
    ):
        canary_spec.parse({**FULL, "analysis": analysis})


def test_label_matchers_with_every_operator_and_escapes_are_accepted() -> None:
    selector = 'namespace="shop", track!="x",pod=~"py-.*" , job!~"a\\"b"'
    analysis = {**FULL["analysis"], "selectors": {"baseline": selector}}
    assert canary_spec.parse({**FULL, "analysis": analysis}).selectors == {"baseline": selector}
