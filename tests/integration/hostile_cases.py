"""Hostile and malformed RustCanary specs for tests/integration/test_hostile_specs.py.

``REFUSED``: specs the real apiserver must refuse, each with the field path its refusal must name.
``ACCEPTED``: specs the CRD lets through on purpose (valid names that exist only in other
namespaces, escaped PromQL, addresses the platform does not allow, hostile text), which the running
operator must keep harmless. Every case is one change to a small valid canary (``base``).
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass
from typing import Any

DELETE = object()  # as a value: remove the key

#: Text a terminal or the plugin's renderer would act on: Rich markup, a colour escape, a
#: terminal-title sequence, a BEL and a right-to-left override.
HOSTILE_TEXT = "[/x][bold]b[/bold]\x1b[31m\x1b]0;pwned\x07\u202e"

# ../ in every spelling an HTTP library or a proxy might normalise, and a name in another namespace.
TRAVERSAL = "../../kube-system/deployments/coredns"
OTHER_NS = "kube-system/coredns"
ENCODED = "..%2F..%2Fkube-system%2Fdeployments%2Fcoredns"


def base(namespace: str, name: str, prometheus: str = "http://127.0.0.1:9090") -> dict[str, Any]:
    """A valid canary: analysis only (``trafficRouting.none``), fast intervals, one KPI and one guard."""
    return {
        "apiVersion": "ferrocanary.io/v1alpha1",
        "kind": "RustCanary",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            # Deployments of its own: two canaries on one Deployment would wait for each other
            # (ClaimedByAnother), and the accepted cases all run at once in one namespace.
            "baseline": {"deployment": f"{name}-python", "service": "scorer-python"},
            "candidate": {"deployment": f"{name}-rust", "service": "scorer-rust"},
            "service": {"name": "scorer", "port": 8080},
            "trafficRouting": {"none": {}},
            "steps": {"weights": [10, 50], "minDwell": "20s"},
            "analysis": {
                "interval": "2s",
                "warmup": "1s",
                "maxDuration": "10m",
                "prometheus": {"address": prometheus, "lag": "1s", "timeout": "2s"},
                "kpis": [{"name": "p99-latency", "type": "latencyQuantile", "quantile": 0.99, "target": 0.6}],
                "guards": [{"name": "error-rate", "type": "errorRate", "maxRatio": 1.0}],
            },
        },
    }


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def put(body: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` (``spec.analysis.kpis[0].name``) to ``value`` (DELETE removes it), making objects."""
    keys: list[str | int] = [
        m.group(1) if m.group(1) is not None else int(m.group(2)) for m in _STEP.finditer(path)
    ]
    node: Any = body
    for key in keys[:-1]:
        if isinstance(key, str) and key not in node:
            node[key] = {}
        node = node[key]
    last = keys[-1]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value


@dataclass(frozen=True)
class Case:
    """Hostile ``changes`` (path -> value) to ``base``; ``field``: what the refusal must name."""

    id: str
    changes: tuple[tuple[str, Any], ...]
    field: str = ""
    annotations: dict[str, str] = dataclasses.field(default_factory=dict)

    def body(self, namespace: str, name: str, prometheus: str = "http://127.0.0.1:9090") -> dict[str, Any]:
        body = base(namespace, name, prometheus)
        for path, value in self.changes:
            put(body, path, value if value is DELETE else copy.deepcopy(value))
        if self.annotations:
            body["metadata"]["annotations"] = dict(self.annotations)
        return body


def _one(id_: str, path: str, value: Any, field_: str | None = None) -> Case:
    return Case(id_, ((path, value),), field_ if field_ is not None else path)


def _kpis(n: int) -> list[dict[str, Any]]:
    return [{"name": f"k{i}", "type": "costPerRequest", "target": 0.7} for i in range(n)]


def _guards(n: int) -> list[dict[str, Any]]:
    return [{"name": f"g{i}", "type": "errorRate"} for i in range(n)]


# --- refused by the CRD ---------------------------------------------------------------------------

_NAME_FIELDS = (
    "spec.baseline.deployment",
    "spec.candidate.deployment",
    "spec.analysis.prometheus.secretRef.name",
)
_NAME_VALUES = (
    ("traversal", TRAVERSAL),
    ("other-ns", OTHER_NS),
    ("encoded", ENCODED),
    ("dotdot", ".."),
    ("empty", ""),
    ("newline", "scorer\nkube-system"),
    ("upper", "CoreDNS"),
    ("bidi", "scorer\u202e"),
    ("too-long", "a" * 254),
    ("query", "scorer?dryRun=All"),
)
NAMES = [
    _one(f"{path.removeprefix('spec.')}-{label}", path, value)
    for path in _NAME_FIELDS
    for label, value in _NAME_VALUES
]

_ROUTE_CASES = [
    # (provider block, field) for each router's object name
    ("gatewayAPI", {"httpRoute": "../victim/httproutes/shop"}, "spec.trafficRouting.gatewayAPI.httpRoute"),
    ("gatewayAPI", {"httpRoute": "victim/shop"}, "spec.trafficRouting.gatewayAPI.httpRoute"),
    ("gatewayAPI", {"httpRoute": "shop%2F..%2F..%2Fvictim"}, "spec.trafficRouting.gatewayAPI.httpRoute"),
    ("gatewayAPI", {"httpRoute": "x" * 254}, "spec.trafficRouting.gatewayAPI.httpRoute"),
    (
        "istio",
        {"virtualService": {"name": "../../victim/virtualservices/shop"}},
        "spec.trafficRouting.istio.virtualService.name",
    ),
    ("istio", {"virtualService": {"name": "victim/shop"}}, "spec.trafficRouting.istio.virtualService.name"),
    (
        "istio",
        {"virtualService": {"name": "shop", "routes": ["r"] * 2}},
        "spec.trafficRouting.istio.virtualService.routes",
    ),
    (
        "istio",
        {"virtualService": {"name": "shop", "routes": [f"r{i}" for i in range(33)]}},
        "spec.trafficRouting.istio.virtualService.routes",
    ),
    ("nginx", {"ingress": "../victim/ingresses/shop"}, "spec.trafficRouting.nginx.ingress"),
    ("nginx", {"ingress": "a" * 181}, "spec.trafficRouting.nginx.ingress"),
    (
        "nginx",
        {"ingress": "shop", "annotationPrefix": "nginx.ingress.kubernetes.io/../x"},
        "spec.trafficRouting.nginx.annotationPrefix",
    ),
    ("nginx", {"ingress": "shop", "annotationPrefix": "x\ny"}, "spec.trafficRouting.nginx.annotationPrefix"),
]
ROUTES = [
    Case(f"{provider}-{i}", (("spec.trafficRouting", {provider: block}),), field_)
    for i, (provider, block, field_) in enumerate(_ROUTE_CASES)
]

SERVICES = [
    _one("baseline-service-traversal", "spec.baseline.service", "../victim/services/shop"),
    _one("candidate-service-other-ns", "spec.candidate.service", "shop.victim"),  # a label, no dots
    _one("candidate-service-too-long", "spec.candidate.service", "s" * 64),
    _one("service-name-slash", "spec.service.name", "victim/shop"),
    _one("service-name-digit-first", "spec.service.name", "1shop"),
    _one("service-port-zero", "spec.service.port", 0),
    _one("service-port-huge", "spec.service.port", 70000),
]

# The other namespace as a field of its own: no such field exists, and strict decoding says so.
NAMESPACES = [
    _one("baseline-namespace", "spec.baseline.namespace", "kube-system", "spec.baseline.namespace"),
    _one("candidate-namespace", "spec.candidate.namespace", "kube-system", "spec.candidate.namespace"),
    _one("service-namespace", "spec.service.namespace", "victim", "spec.service.namespace"),
    _one(
        "httproute-namespace",
        "spec.trafficRouting",
        {"gatewayAPI": {"httpRoute": "shop", "namespace": "victim"}},
        "spec.trafficRouting.gatewayAPI.namespace",
    ),
    _one(
        "virtualservice-namespace",
        "spec.trafficRouting",
        {"istio": {"virtualService": {"name": "shop", "namespace": "victim"}}},
        "spec.trafficRouting.istio.virtualService.namespace",
    ),
    _one(
        "secretref-namespace",
        "spec.analysis.prometheus.secretRef",
        {"name": "prom-token", "namespace": "victim"},
        "spec.analysis.prometheus.secretRef.namespace",
    ),
]

_SEL = "spec.analysis.selectors"
_SELECTOR_VALUES = (
    ("close-brace", 'namespace="shop"} or vector(1) or up{job="x"'),
    ("or", 'namespace="shop" or up'),
    ("braces", '{namespace="shop"}'),
    ("unquoted", "namespace=shop"),
    ("single-quotes", "namespace='shop'"),
    ("backticks", "namespace=`shop`"),
    ("newline-in-value", 'namespace="shop\n"'),
    ("escape-in-value", 'namespace="\x1b[31mshop"'),
    ("trailing-comma", 'namespace="shop",'),
    ("bad-operator", 'namespace=="shop"'),
    ("digit-label", '1ns="shop"'),
    ("unterminated", 'namespace="shop'),
    ("too-long", 'namespace="' + "a" * 1020 + '"'),
    ("subquery", 'namespace="a"}[1h:1s]'),
)
_SELECTOR_KEYS = ("baseline", "candidate", "baselinePods", "candidatePods")
SELECTORS = [
    _one(f"selectors-{_SELECTOR_KEYS[i % 4]}-{label}", f"{_SEL}.{_SELECTOR_KEYS[i % 4]}", value)
    for i, (label, value) in enumerate(_SELECTOR_VALUES)
] + [_one("selectors-unknown-key", f"{_SEL}.query", 'up{job="x"}', f"{_SEL}.query")]

_ADDR = "spec.analysis.prometheus.address"
ADDRESSES = [
    _one(f"address-{label}", _ADDR, value)
    for label, value in (
        ("userinfo", "http://admin:s3cret@prometheus.monitoring:9090"),
        ("user-only", "https://token@prometheus.monitoring"),
        ("userinfo-after-host", "http://prometheus.monitoring:9090@evil.example"),
        ("file", "file:///var/run/secrets/kubernetes.io/serviceaccount/token"),
        ("gopher", "gopher://127.0.0.1:6379/_FLUSHALL"),
        ("ftp", "ftp://evil.example/"),
        ("javascript", "javascript:alert(1)"),
        ("scheme-relative", "//evil.example:9090"),
        ("no-host", "http://"),
        ("space", "http://prom etheus:9090"),
        ("newline-header", "http://prometheus:9090/\r\nAuthorization: x"),
        ("upper-scheme", "HTTP://prometheus:9090"),
        ("too-long", "http://p/" + "a" * 2048),
    )
]

_DURATION_FIELDS = (
    "spec.steps.minDwell",
    "spec.analysis.interval",
    "spec.analysis.warmup",
    "spec.analysis.maxDuration",
    "spec.analysis.prometheus.timeout",
    "spec.analysis.prometheus.lag",
    "spec.analysis.informationHorizon",
)
_DURATION_VALUES = (("space", "5 m"), ("negative", "-1s"), ("days", "1d"), ("injected", "5m;x"))
DURATIONS = [
    _one(f"{path.rsplit('.', 1)[1]}-{label}", path, value)
    for i, path in enumerate(_DURATION_FIELDS)
    for j, (label, value) in enumerate(_DURATION_VALUES)
    if (i + j) % 2 == 0 or path == "spec.steps.minDwell"
] + [
    _one("minDwell-too-long", "spec.steps.minDwell", "1" * 16 + "s"),
    _one("minDwell-iso8601", "spec.steps.minDwell", "PT5M"),
    _one("interval-zero", "spec.analysis.interval", "0s"),
    _one("interval-over-an-hour", "spec.analysis.interval", "2h"),
    _one("warmup-not-below-minDwell", "spec.analysis.warmup", "20s", "spec.steps.minDwell"),
    _one("maxDuration-below-interval", "spec.analysis.maxDuration", "1s", "spec.analysis.maxDuration"),
    _one("lag-equal-minDwell", "spec.analysis.prometheus.lag", "20s"),
    _one("lag-over-minDwell", "spec.analysis.prometheus.lag", "1h"),
    _one("minDwell-overflows", "spec.steps.minDwell", "99999999999h"),
    _one("maxDuration-overflows", "spec.analysis.maxDuration", "9999999h"),
]

_W = "spec.steps.weights"
WEIGHTS = [
    _one("weights-zero", _W, [0, 10]),
    _one("weights-over-100", _W, [10, 101]),
    _one("weights-negative", _W, [-5, 10]),
    _one("weights-unsorted", _W, [50, 10]),
    _one("weights-repeated", _W, [10, 10]),
    _one("weights-empty", _W, []),
    _one("weights-too-many", _W, list(range(1, 22))),
    _one("weights-string", _W, "5,10"),
    _one("weights-float", _W, [5.5, 10]),
    _one("weights-bool", _W, [True]),
]

_K = "spec.analysis.kpis"
_G = "spec.analysis.guards"
KPIS = [
    _one("kpis-empty", _K, []),
    _one("kpis-too-many", _K, _kpis(17)),
    _one("kpis-not-a-list", _K, {"name": "p99-latency"}),
    _one("kpis-item-string", _K, ["p99-latency"], f"{_K}[0]"),
    _one("kpis-duplicate-name", _K, _kpis(1) * 2, f"{_K}[1]"),
    _one("kpi-name-brace", f"{_K}[0].name", 'p99"} or up{x="'),
    _one("kpi-name-traversal", f"{_K}[0].name", "../p99"),
    _one("kpi-name-newline", f"{_K}[0].name", "p99\nlatency"),
    _one("kpi-name-too-long", f"{_K}[0].name", "k" * 64),
    _one("kpi-type-unknown", f"{_K}[0].type", "promql"),
    _one("kpi-target-string", f"{_K}[0].target", "0.6"),
    _one("kpi-target-out-of-range", f"{_K}[0].target", 5),
    _one("kpi-quantile-one", f"{_K}[0].quantile", 1.0, f"{_K}[0]"),
    _one("kpi-quantile-missing", f"{_K}[0].quantile", DELETE, f"{_K}[0]"),
    _one("kpi-custom-query", f"{_K}[0].query", "sum(up)", f"{_K}[0].query"),
    _one("guards-too-many", _G, _guards(9)),
    _one("guards-duplicate-name", _G, _guards(1) * 2, f"{_G}[1]"),
    _one("guard-name-space", f"{_G}[0].name", "error rate"),
    _one("guard-type-unknown", f"{_G}[0].type", "cpu"),
    _one("guard-maxRatio-zero", f"{_G}[0].maxRatio", 0),
    _one("guard-maxRatio-huge", f"{_G}[0].maxRatio", 101),
]

_A = "spec.analysis"
TYPES_AND_RANGES = [
    _one("baseline-string", "spec.baseline", "coredns"),
    _one("baseline-deployment-number", "spec.baseline.deployment", 5),
    _one("candidate-missing", "spec.candidate", DELETE, "spec.candidate"),
    Case(
        "same-deployment-twice",
        (("spec.baseline.deployment", "scorer"), ("spec.candidate.deployment", "scorer")),
        "spec.candidate.deployment",
    ),
    _one("routing-none-and-replicas", "spec.trafficRouting.replicas", {"total": 4}, "spec.trafficRouting"),
    _one("routing-empty", "spec.trafficRouting", {}),
    _one(
        "replicas-total-string",
        "spec.trafficRouting",
        {"replicas": {"total": "4"}},
        "spec.trafficRouting.replicas.total",
    ),
    _one(
        "replicas-total-one",
        "spec.trafficRouting",
        {"replicas": {"total": 1}},
        "spec.trafficRouting.replicas.total",
    ),
    _one(
        "replicas-total-huge",
        "spec.trafficRouting",
        {"replicas": {"total": 100000}},
        "spec.trafficRouting.replicas.total",
    ),
    _one("none-weight-100", "spec.trafficRouting.none.candidateWeight", 100),
    _one("insecure-string", f"{_A}.prometheus.insecureSkipVerify", "yes"),
    _one(
        "secretref-key-slash",
        f"{_A}.prometheus.secretRef",
        {"name": "t", "key": "../token"},
        f"{_A}.prometheus.secretRef.key",
    ),
    _one(
        "secretref-no-name", f"{_A}.prometheus.secretRef", {"key": "token"}, f"{_A}.prometheus.secretRef.name"
    ),
    _one("prometheus-headers", f"{_A}.prometheus.headers", {"Authorization": "Bearer x"}),
    _one("promotion-mode", "spec.promotion.mode", "yolo"),
    _one("promotion-scale-string", "spec.promotion.scaleDownBaseline", "true"),
    _one("confidence-two", f"{_A}.confidence", 2),
    _one("minBlocks-zero", f"{_A}.minBlocks", 0),
    _one("price-negative", f"{_A}.pricing.cpuHour", -1),
    _one("unknown-top-level", "spec.exec", ["sh", "-c", "id"]),
    _one("unknown-in-analysis", f"{_A}.promql", "sum(up)"),
    Case("metadata-name-dots-upper", (("metadata.name", "Core..DNS"),), "metadata.name"),
    Case("metadata-name-too-long", (("metadata.name", "n" * 254),), "metadata.name"),
    Case("annotation-key-traversal", (), "metadata.annotations", {"ferrocanary.io/../action": "promote"}),
]

REFUSED: list[Case] = [
    *NAMES,
    *ROUTES,
    *SERVICES,
    *NAMESPACES,
    *SELECTORS,
    *ADDRESSES,
    *DURATIONS,
    *WEIGHTS,
    *KPIS,
    *TYPES_AND_RANGES,
]


# --- accepted by the CRD, kept harmless by the operator -------------------------------------------


@dataclass(frozen=True)
class Accepted:
    """A spec the apiserver takes; the operator must hold it (``phases``) with a status naming ``expect``.

    ``expect`` strings may hold ``{ns}`` (the canary's namespace), ``{prometheus}`` and ``{trap}`` (the
    base URL of a listener that records whatever reaches it). ``promote``: a person then asks for a
    promotion through the ``ferrocanary.io/action`` annotation once the canary is Progressing.
    """

    id: str
    changes: tuple[tuple[str, Any], ...]
    phases: tuple[str, ...]
    expect: tuple[str, ...]
    annotations: dict[str, str] = dataclasses.field(default_factory=dict)
    promote: bool = False
    finding: str = ""  # set: the expectation fails today (an open finding), the test is xfail(strict)
    floods: bool = False  # the finding also posts the same Warning Event every tick

    def body(self, namespace: str, prometheus: str, trap: str) -> dict[str, Any]:
        case = Case(self.id, tuple((p, _fill(v, namespace, prometheus, trap)) for p, v in self.changes))
        body = case.body(namespace, self.id, prometheus)
        if self.annotations:
            body["metadata"]["annotations"] = dict(self.annotations)
        return body


def _fill(value: Any, namespace: str, prometheus: str, trap: str) -> Any:
    if isinstance(value, str):
        return value.replace("{ns}", namespace).replace("{prometheus}", prometheus).replace("{trap}", trap)
    if isinstance(value, dict):
        return {k: _fill(v, namespace, prometheus, trap) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, namespace, prometheus, trap) for v in value]
    return value


_PROM = "spec.analysis.prometheus"
_RUNNING = ("Progressing",)
#: A selector value that closes its quote and brace in PromQL if pasted unescaped; escaped, it is
#: one (odd) label value, which the CRD rightly accepts.
ESCAPED_SELECTOR = 'namespace="x\\"} or vector(1) or up{a=\\""'
#: Credentials the victim namespace and kube-system hold; the tenant names them, never reaches them.
VICTIM_SECRET = "prom-token"

ACCEPTED: list[Accepted] = [
    Accepted(
        "promote-scales-coredns",
        (
            ("spec.baseline", {"deployment": "coredns"}),
            ("spec.candidate", {"deployment": "coredns-rust"}),
            ("spec.promotion", {"scaleDownBaseline": True}),
        ),
        ("Promoting",),
        ("Deployment {ns}/coredns (spec.baseline.deployment)",),
        promote=True,
    ),
    Accepted(
        "replicas-on-coredns",
        (
            ("spec.baseline", {"deployment": "kube-dns"}),
            ("spec.candidate", {"deployment": "kube-dns-rust"}),
            ("spec.trafficRouting", {"replicas": {"total": 4}}),
            ("spec.rollback", {"scaleDownCandidate": True}),
        ),
        ("Pending",),
        ("Deployment {ns}/kube-dns (spec.baseline.deployment) not found",),
    ),
    Accepted(
        "httproute-of-victim",
        (("spec.trafficRouting", {"gatewayAPI": {"httpRoute": "shop"}}),),
        ("Pending",),
        ("{ns}/shop",),
    ),
    Accepted(
        "ingress-of-victim",
        (("spec.trafficRouting", {"nginx": {"ingress": "shop"}}),),
        ("Pending",),
        ("{ns}/shop",),
    ),
    Accepted(
        "secret-of-victim",
        ((f"{_PROM}.secretRef", {"name": VICTIM_SECRET}),),
        _RUNNING,
        (f"cannot read the Prometheus token from Secret {{ns}}/{VICTIM_SECRET}",),
    ),
    Accepted(
        "secret-key-dotdot",
        ((f"{_PROM}.secretRef", {"name": "tenant-token", "key": ".."}),),
        _RUNNING,
        ("cannot read the Prometheus token from Secret {ns}/tenant-token key ..",),
    ),
    Accepted(
        "token-to-other-address",
        (
            (f"{_PROM}.address", "{trap}/token-to-other-address"),
            (f"{_PROM}.secretRef", {"name": "tenant-token"}),
        ),
        _RUNNING,
        ("spec.analysis.prometheus.address", "may not receive the Prometheus token"),
    ),
    Accepted(
        "insecure-tls-not-allowed",
        ((f"{_PROM}.insecureSkipVerify", True),),
        _RUNNING,
        ("spec.analysis.prometheus.insecureSkipVerify is not allowed",),
    ),
    Accepted(
        "answer-not-echoed",
        ((f"{_PROM}.address", "{trap}/answer-not-echoed"),),
        _RUNNING,
        ("Prometheus at",),
    ),
    Accepted(
        "selector-escaped-quotes",
        (
            (f"{_PROM}.address", "{trap}/selector-escaped-quotes"),
            ("spec.analysis.selectors", {"baseline": ESCAPED_SELECTOR, "candidate": 'track="\u202e[/x]"'}),
        ),
        _RUNNING,
        ("Prometheus at",),
    ),
    Accepted(
        "address-percent-at",
        ((f"{_PROM}.address", "http://127.0.0.1%40evil.invalid:1"),),
        _RUNNING,
        ("unreachable",),
    ),
    Accepted(
        "hostile-action-annotation",
        (),
        _RUNNING,
        ("unknown action",),
        annotations={"ferrocanary.io/action": HOSTILE_TEXT},
    ),
    Accepted(
        "information-horizon-millennium",
        (("spec.analysis.informationHorizon", "9999999h"),),
        ("Invalid",),
        ("spec.analysis.informationHorizon",),
    ),
]


#: The spec field each accepted case's status must name (the cases whose trouble is in the spec).
FIELDS: dict[str, str] = {
    "promote-scales-coredns": "spec.baseline.deployment",
    "replicas-on-coredns": "spec.baseline.deployment",
    "httproute-of-victim": "spec.trafficRouting.gatewayAPI.httpRoute",
    "ingress-of-victim": "spec.trafficRouting.nginx.ingress",
    "secret-of-victim": "spec.analysis.prometheus.secretRef",
    "secret-key-dotdot": "spec.analysis.prometheus.secretRef",
    "token-to-other-address": "spec.analysis.prometheus.address",
    "insecure-tls-not-allowed": "spec.analysis.prometheus.insecureSkipVerify",
    "information-horizon-millennium": "spec.analysis.informationHorizon",
}
#: Those whose status names the object (in the canary's own namespace) but not the field, today.
FIELD_NOT_NAMED = (
    "a Deployment, HTTPRoute or token Secret the spec names but that does not exist in the canary's "
    "namespace is reported by object only ('Deployment <ns>/coredns not found', '/apis/apps/v1/"
    "namespaces/<ns>/deployments/coredns/scale: HTTP 404', 'HTTPRoute <ns>/shop not found', 'cannot "
    "read the Prometheus token from Secret <ns>/prom-token'), without the spec field; the nginx router "
    "names it ('Ingress <ns>/shop (spec.trafficRouting.nginx.ingress) not found')"
)
FIELD_NOT_NAMED_TODAY: frozenset[str] = frozenset()
