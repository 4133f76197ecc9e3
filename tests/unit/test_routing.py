"""Traffic routers against an in-memory API that behaves like the apiserver on the calls they make.

``FakeKube`` implements the ``kube.rest.JsonApi`` Protocol (GET, POST, PUT with resourceVersion
checks, merge and JSON patches, DELETE with preconditions, the Deployment scale subresource; it lives in
tests/fakes/kube.py); the real apiserver runs these routers in tests/integration.
"""

from __future__ import annotations

from typing import Any

import pytest

from ferrocanary.model import spec as canary_spec
from ferrocanary.model.decisions import Ending
from ferrocanary.routing import gateway_api, istio, nginx, null, protocol, registry, replicas
from tests.fakes.kube import FakeKube, deployment

NS = "shop"


def http_route(*refs: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "scorer", "namespace": NS},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}], "backendRefs": list(refs)},
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
                    "backendRefs": [{"name": "admin", "port": 80}],
                },
            ],
        },
    }


TARGET = protocol.RouteTarget(
    namespace=NS,
    canary="scorer",
    baseline_deployment="py",
    candidate_deployment="rs",
    baseline_service="scorer-py",
    candidate_service="scorer-rs",
    service="scorer",
    port=8080,
)
ROUTE = gateway_api.route_path(NS, "scorer")


def gateway(kube: FakeKube) -> gateway_api.GatewayApiRouter:
    return gateway_api.GatewayApiRouter(kube, TARGET, "scorer")


def test_gateway_ensure_adds_the_candidate_beside_the_baseline_at_zero() -> None:
    kube = FakeKube()
    kube.add(ROUTE, http_route({"name": "scorer-py", "port": 8080}))
    router = gateway(kube)
    router.ensure()
    refs = kube.objects[ROUTE]["spec"]["rules"][0]["backendRefs"]
    assert refs == [{"name": "scorer-py", "port": 8080}, {"name": "scorer-rs", "port": 8080, "weight": 0}]
    assert router.get_weights() == protocol.Weights(100.0, 0.0)
    assert kube.objects[ROUTE]["spec"]["rules"][1]["backendRefs"] == [{"name": "admin", "port": 80}]
    writes = len(kube.writes)
    router.ensure()
    assert len(kube.writes) == writes  # idempotent: nothing to change, nothing written


def test_gateway_set_weights_splits_and_finalize_ends_cleanly() -> None:
    kube = FakeKube()
    kube.add(ROUTE, http_route({"name": "scorer-py", "port": 8080}))
    router = gateway(kube)
    assert router.set_weights(25) == protocol.Weights(75.0, 25.0)
    refs = kube.objects[ROUTE]["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == [("scorer-py", 75), ("scorer-rs", 25)]
    assert router.finalize(Ending.PROMOTED) == protocol.Weights(0.0, 100.0)
    assert router.finalize(Ending.ROLLED_BACK) == protocol.Weights(100.0, 0.0)
    refs = kube.objects[ROUTE]["spec"]["rules"][0]["backendRefs"]
    assert refs == [{"name": "scorer-py", "port": 8080}]  # the candidate detached, the route as written
    assert gateway_api.TEAM_WEIGHTS not in (kube.objects[ROUTE]["metadata"].get("annotations") or {})


def test_gateway_keeps_other_backends_share_and_rollback_restores_the_teams_weights() -> None:
    kube = FakeKube()
    legacy = {"name": "scorer-legacy", "port": 8080, "weight": 20}
    kube.add(ROUTE, http_route({"name": "scorer-py", "port": 8080, "weight": 80}, legacy))
    router = gateway(kube)
    router.ensure()
    assert router.set_weights(25) == protocol.Weights(75.0, 25.0)
    refs = {r["name"]: r["weight"] for r in kube.objects[ROUTE]["spec"]["rules"][0]["backendRefs"]}
    assert refs == {"scorer-py": 80 * 75, "scorer-rs": 80 * 25, "scorer-legacy": 20 * 100}
    assert refs["scorer-legacy"] / sum(refs.values()) == 0.2  # the legacy build still gets its 20 %
    router.set_weights(50)
    router.finalize(Ending.ROLLED_BACK)
    rule = kube.objects[ROUTE]["spec"]["rules"][0]
    assert rule["backendRefs"] == [{"name": "scorer-py", "port": 8080, "weight": 80}, legacy]
    assert kube.objects[ROUTE]["spec"]["rules"][1]["backendRefs"] == [{"name": "admin", "port": 80}]


def test_a_promotion_gives_the_candidate_the_baselines_share_and_is_idempotent() -> None:
    kube = FakeKube()
    legacy = {"name": "scorer-legacy", "port": 8080, "weight": 20}
    kube.add(ROUTE, http_route({"name": "scorer-py", "port": 8080, "weight": 80}, legacy))
    router = gateway(kube)
    router.set_weights(10)
    for _ in range(2):  # a promotion retried after a lost status write writes the same weights
        assert router.finalize(Ending.PROMOTED) == protocol.Weights(0.0, 100.0)
        refs = {r["name"]: r["weight"] for r in kube.objects[ROUTE]["spec"]["rules"][0]["backendRefs"]}
        assert refs == {"scorer-py": 0, "scorer-rs": 8000, "scorer-legacy": 2000}


def test_gateway_retries_when_someone_else_wrote_the_route_first() -> None:
    kube = FakeKube()
    kube.add(ROUTE, http_route({"name": "scorer-py", "port": 8080}))
    real_get = kube.get
    raced = {"done": False}

    def racing_get(path: str) -> dict[str, Any]:
        obj = real_get(path)
        if not raced["done"]:  # another writer bumps the resourceVersion right after our read
            raced["done"] = True
            current = kube.objects[ROUTE]
            current["metadata"]["labels"] = {"edited": "yes"}
            kube._store(ROUTE, current, "other")
        return obj

    kube.get = racing_get  # type: ignore[method-assign]
    assert gateway(kube).set_weights(10).candidate == 10.0
    assert kube.objects[ROUTE]["metadata"]["labels"] == {"edited": "yes"}  # their edit survived


def test_gateway_names_what_is_missing() -> None:
    kube = FakeKube()
    with pytest.raises(
        protocol.RoutingError,
        match=r"HTTPRoute shop/scorer \(spec\.trafficRouting\.gatewayAPI\.httpRoute\) not found",
    ):
        gateway(kube).ensure()
    kube.add(ROUTE, http_route({"name": "other", "port": 8080}))
    with pytest.raises(protocol.RoutingError, match=r"no rule with a backendRef to Service scorer-py"):
        gateway(kube).ensure()


def virtual_service(*destinations: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "scorer", "namespace": NS},
        "spec": {
            "hosts": ["scorer"],
            "http": [
                {"name": "api", "match": [{"uri": {"prefix": "/v1"}}], "route": list(destinations)},
                {"name": "admin", "route": [{"destination": {"host": "admin"}}]},
            ],
        },
    }


VS = istio.virtual_service_path(NS, "scorer")


def dest(host: str, weight: int | None = None, port: int | None = 8080) -> dict[str, Any]:
    out: dict[str, Any] = {"destination": {"host": host, **({"port": {"number": port}} if port else {})}}
    if weight is not None:
        out["weight"] = weight
    return out


def test_istio_ensure_adds_the_candidate_beside_the_baseline_at_zero() -> None:
    kube = FakeKube()
    kube.add(VS, virtual_service(dest("scorer-py.shop.svc.cluster.local")))
    router = istio.IstioRouter(kube, TARGET, "scorer")
    router.ensure()
    http = kube.objects[VS]["spec"]["http"]
    # same host form and port as the baseline; weights add up to 100, as Istio requires
    assert http[0]["route"] == [
        dest("scorer-py.shop.svc.cluster.local", 100),
        dest("scorer-rs.shop.svc.cluster.local", 0),
    ]
    assert http[1]["route"] == [{"destination": {"host": "admin"}}]  # not the baseline's: untouched
    assert router.get_weights() == protocol.Weights(100.0, 0.0)
    writes = len(kube.writes)
    router.ensure()
    assert len(kube.writes) == writes  # idempotent


def test_istio_set_weights_splits_and_finalize_ends_cleanly() -> None:
    kube = FakeKube()
    kube.add(VS, virtual_service(dest("scorer-py")))
    router = istio.from_spec(TARGET, {"virtualService": {"name": "scorer", "routes": ["api"]}}, kube)
    assert router.get_weights() == protocol.Weights(100.0, 0.0)  # a lone destination takes it all
    assert router.set_weights(25) == protocol.Weights(75.0, 25.0)
    assert kube.objects[VS]["spec"]["http"][0]["route"] == [dest("scorer-py", 75), dest("scorer-rs", 25)]
    assert router.get_weights() == protocol.Weights(75.0, 25.0)
    assert router.finalize(Ending.PROMOTED) == protocol.Weights(0.0, 100.0)
    assert router.finalize(Ending.ROLLED_BACK) == protocol.Weights(100.0, 0.0)
    # detached again, exactly as the team wrote it (no weight on a lone destination), record dropped
    assert kube.objects[VS]["spec"]["http"][0]["route"] == [dest("scorer-py")]
    assert protocol.TEAM_WEIGHTS not in kube.objects[VS]["metadata"].get("annotations", {})


def test_istio_splits_only_the_named_routes() -> None:
    kube = FakeKube()
    body = virtual_service(dest("scorer-py"))
    body["spec"]["http"].append({"name": "beta", "route": [dest("scorer-py")]})
    kube.add(VS, body)
    istio.IstioRouter(kube, TARGET, "scorer", ["beta"]).set_weights(10)
    http = kube.objects[VS]["spec"]["http"]
    assert http[0]["route"] == [dest("scorer-py")]
    assert http[2]["route"] == [dest("scorer-py", 90), dest("scorer-rs", 10)]


def test_istio_names_what_is_wrong() -> None:
    kube = FakeKube()
    router = istio.IstioRouter(kube, TARGET, "scorer")
    with pytest.raises(
        protocol.RoutingError,
        match=r"VirtualService shop/scorer \(spec\.trafficRouting\.istio\.virtualService\.name\) not found",
    ):
        router.ensure()
    kube.add(VS, virtual_service(dest("other")))
    with pytest.raises(
        protocol.RoutingError, match=r"virtualService\.name: .* no http route with a destination"
    ):
        router.ensure()
    with pytest.raises(
        protocol.RoutingError, match=r"virtualService\.routes\[1\]: .* no http route named 'nope'"
    ):
        istio.IstioRouter(kube, TARGET, "scorer", ["api", "nope"]).ensure()
    kube.add(VS, virtual_service(dest("scorer-py", 80), dest("scorer-py", 20)))
    with pytest.raises(
        protocol.RoutingError, match=r"http route api .* exactly one destination to host scorer-py"
    ):
        router.set_weights(10)
    assert kube.objects[VS]["spec"]["http"][0]["route"][1] == dest("scorer-py", 20)  # nothing written
    with pytest.raises(
        protocol.RoutingError, match=r"spec\.trafficRouting\.istio\.virtualService\.name is required"
    ):
        istio.from_spec(TARGET, {}, kube)
    with pytest.raises(
        protocol.RoutingError, match=r"spec\.baseline\.service .* spec\.trafficRouting\.istio"
    ):
        istio.from_spec(protocol.RouteTarget(NS, "x", "py", "rs"), {"virtualService": {"name": "s"}}, kube)


def test_istio_splits_only_the_baselines_share_and_rollback_puts_back_the_teams_weights() -> None:
    kube = FakeKube()
    kube.add(VS, virtual_service(dest("scorer-py", 80), dest("legacy", 20)))
    router = istio.IstioRouter(kube, TARGET, "scorer")
    router.ensure()
    route = lambda: kube.objects[VS]["spec"]["http"][0]["route"]  # noqa: E731
    assert route() == [dest("scorer-py", 80), dest("legacy", 20), dest("scorer-rs", 0)]
    assert router.set_weights(25) == protocol.Weights(75.0, 25.0)
    assert route() == [dest("scorer-py", 60), dest("legacy", 20), dest("scorer-rs", 20)]  # legacy keeps 20
    assert sum(d["weight"] for d in route()) == 100  # as Istio requires
    assert router.set_weights(5) == protocol.Weights(95.0, 5.0)  # round(80 x 5%) = 4 of 80
    kube.objects[VS]["spec"]["http"][0]["route"][1]["weight"] = 15  # someone edits mid-canary
    assert router.finalize(Ending.PROMOTED) == protocol.Weights(0.0, 100.0)
    assert route() == [dest("scorer-py", 0), dest("legacy", 15), dest("scorer-rs", 80)]
    assert router.finalize(Ending.ROLLED_BACK) == protocol.Weights(100.0, 0.0)
    assert route() == [dest("scorer-py", 80), dest("legacy", 20)]  # exactly what the team wrote
    assert protocol.TEAM_WEIGHTS not in kube.objects[VS]["metadata"].get("annotations", {})


def test_istio_refuses_to_split_a_baseline_the_team_weighted_zero() -> None:
    kube = FakeKube()
    kube.add(VS, virtual_service(dest("scorer-py", 0), dest("legacy", 100)))
    with pytest.raises(protocol.RoutingError, match=r"http route api .* gives the baseline weight 0"):
        istio.IstioRouter(kube, TARGET, "scorer").set_weights(10)


def test_istio_hosts_match_in_every_form_of_the_service_name() -> None:
    for host in ("scorer-py", "scorer-py.shop", "scorer-py.shop.svc", "scorer-py.shop.svc.cluster.local"):
        assert istio.is_host(host, "scorer-py", NS)
    for host in ("scorer-py.other", "scorer-py2", "x.scorer-py", None):
        assert not istio.is_host(host, "scorer-py", NS)


def ingress(backend: str = "scorer-py", annotations: dict[str, str] | None = None) -> dict[str, Any]:
    def path(prefix: str, service: str) -> dict[str, Any]:
        return {
            "path": prefix,
            "pathType": "Prefix",
            "backend": {"service": {"name": service, "port": {"number": 8080}}},
        }

    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "scorer", "namespace": NS, "annotations": annotations or {}},
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["scorer.example.com"], "secretName": "scorer-tls"}],
            "rules": [
                {
                    "host": "scorer.example.com",
                    "http": {"paths": [path("/v1", backend), path("/admin", "admin")]},
                },
                {"host": "admin.example.com", "http": {"paths": [path("/", "admin")]}},
            ],
        },
    }


STABLE = nginx.ingress_path(NS, "scorer")
CANARY = nginx.ingress_path(NS, "scorer-scorer-canary")
W = "nginx.ingress.kubernetes.io/canary-weight"


def test_nginx_ensure_creates_a_canary_ingress_for_the_baselines_paths_only() -> None:
    kube = FakeKube()
    kube.add(STABLE, ingress())
    router = nginx.from_spec(TARGET, {"ingress": "scorer"}, kube)
    router.ensure()
    canary = kube.objects[CANARY]
    assert canary["metadata"]["annotations"] == {
        "ferrocanary.io/rustcanary": "scorer",
        "nginx.ingress.kubernetes.io/canary": "true",
        W: "0",
    }
    assert canary["spec"]["ingressClassName"] == "nginx"
    assert canary["spec"]["tls"] == ingress()["spec"]["tls"]
    # only the path that reached the baseline, now to the candidate; the admin routes stay stable-only
    assert canary["spec"]["rules"] == [
        {
            "host": "scorer.example.com",
            "http": {
                "paths": [
                    {
                        "path": "/v1",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": "scorer-rs", "port": {"number": 8080}}},
                    }
                ]
            },
        }
    ]
    assert "ownerReferences" not in canary["metadata"]  # promoted traffic must survive the RustCanary
    assert kube.objects[STABLE]["metadata"]["resourceVersion"] == "1"  # the team's Ingress is never written
    assert router.get_weights() == protocol.Weights(100.0, 0.0)
    writes = len(kube.writes)
    router.ensure()
    assert len(kube.writes) == writes  # idempotent


def test_nginx_weights_ride_on_the_annotation_and_rollback_deletes_the_canary() -> None:
    kube = FakeKube()
    kube.add(STABLE, ingress())
    router = nginx.NginxRouter(kube, TARGET, "scorer")
    assert router.get_weights() == protocol.Weights(100.0, 0.0)  # no canary Ingress yet: all stable
    assert router.set_weights(25) == protocol.Weights(75.0, 25.0)  # creates it when ensure did not
    assert kube.objects[CANARY]["metadata"]["annotations"][W] == "25"
    kube.objects[CANARY]["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight-total"] = (
        "1000"
    )
    assert router.get_weights() == protocol.Weights(97.5, 2.5)  # someone's total is read honestly
    assert router.set_weights(30) == protocol.Weights(70.0, 30.0)  # and dropped: our weights are percents
    assert router.finalize(Ending.PROMOTED) == protocol.Weights(0.0, 100.0)
    assert kube.objects[CANARY]["metadata"]["annotations"][W] == "100"
    assert router.finalize(Ending.ROLLED_BACK) == protocol.Weights(100.0, 0.0)
    assert CANARY not in kube.objects
    assert router.finalize(Ending.ROLLED_BACK) == protocol.Weights(100.0, 0.0)  # idempotent
    assert router.get_weights() == protocol.Weights(100.0, 0.0)


def test_nginx_honours_the_annotation_prefix_and_the_legacy_class_annotation() -> None:
    kube = FakeKube()
    kube.add(
        STABLE, ingress(annotations={"kubernetes.io/ingress.class": "public", "cert-manager.io/issuer": "x"})
    )
    router = nginx.from_spec(TARGET, {"ingress": "scorer", "annotationPrefix": "ingress.example.io"}, kube)
    router.set_weights(10)
    assert kube.objects[CANARY]["metadata"]["annotations"] == {
        "ferrocanary.io/rustcanary": "scorer",
        "kubernetes.io/ingress.class": "public",
        "ingress.example.io/canary": "true",
        "ingress.example.io/canary-weight": "10",
    }  # no other annotation copied: a cert-manager one would issue a second certificate


def test_nginx_names_what_is_wrong_and_never_touches_an_ingress_it_does_not_own() -> None:
    kube = FakeKube()
    router = nginx.NginxRouter(kube, TARGET, "scorer")
    with pytest.raises(
        protocol.RoutingError, match=r"Ingress shop/scorer \(spec\.trafficRouting\.nginx\.ingress\) not found"
    ):
        router.ensure()
    kube.add(STABLE, ingress(backend="other"))
    with pytest.raises(
        protocol.RoutingError, match=r"nginx\.ingress: .* no path with a backend to Service scorer-py"
    ):
        router.ensure()
    kube.add(STABLE, ingress())
    kube.add(CANARY, ingress(annotations={"nginx.ingress.kubernetes.io/canary": "true", W: "50"}))
    with pytest.raises(
        protocol.RoutingError, match=r"canary Ingress shop/scorer-scorer-canary exists and is not"
    ):
        router.set_weights(10)
    with pytest.raises(protocol.RoutingError, match=r"is not ferrocanary's"):
        router.finalize(Ending.ROLLED_BACK)
    assert kube.objects[CANARY]["metadata"]["annotations"][W] == "50"
    kube.add(STABLE, ingress(annotations={"nginx.ingress.kubernetes.io/canary": "true"}))
    with pytest.raises(
        protocol.RoutingError, match=r"nginx\.ingress: Ingress shop/scorer is itself a canary"
    ):
        router.ensure()
    with pytest.raises(protocol.RoutingError, match=r"spec\.trafficRouting\.nginx\.ingress is required"):
        nginx.from_spec(TARGET, {}, kube)


@pytest.mark.parametrize(
    ("total", "percent", "expected"),
    [
        (10, 0, (10, 0)),
        (10, 5, (9, 1)),
        (10, 25, (7, 3)),
        (10, 50, (5, 5)),
        (10, 99, (1, 9)),
        (10, 100, (0, 10)),
        (4, 10, (3, 1)),
        (3, 50, (1, 2)),
    ],
)
def test_replica_split_keeps_the_total_and_a_pod_per_arm_in_flight(
    total: int, percent: int, expected: tuple[int, int]
) -> None:
    assert replicas.split(total, percent) == expected
    assert sum(replicas.split(total, percent)) == total


def test_replica_router_scales_both_deployments_and_reports_the_real_split() -> None:
    kube = FakeKube()
    kube.add("/apis/apps/v1/namespaces/shop/deployments/py", deployment("py", 10))
    kube.add("/apis/apps/v1/namespaces/shop/deployments/rs", deployment("rs", 0))
    router = replicas.ReplicaRouter(kube, TARGET, total=10)
    router.ensure()
    assert router.set_weights(5) == protocol.Weights(90.0, 10.0)  # 1 pod of 10: 10%, not 5%
    assert router.get_weights() == protocol.Weights(90.0, 10.0)
    # growing the candidate is written before shrinking the baseline: capacity never dips
    assert [w[1].rsplit("/", 1)[-1] for w in kube.writes] == ["rs", "py"]
    router.set_weights(50)
    assert (
        kube.objects["/apis/apps/v1/namespaces/shop/deployments/py"]["spec"]["replicas"],
        kube.objects["/apis/apps/v1/namespaces/shop/deployments/rs"]["spec"]["replicas"],
    ) == (5, 5)
    assert router.finalize(Ending.ROLLED_BACK) == protocol.Weights(100.0, 0.0)
    with pytest.raises(
        protocol.RoutingError, match=r"Deployment shop/missing \(spec\.baseline\.deployment\) not found"
    ):
        replicas.ReplicaRouter(kube, protocol.RouteTarget(NS, "x", "missing", "rs"), total=4).ensure()


def test_null_router_reports_the_declared_split_and_never_writes() -> None:
    kube = FakeKube()
    router = null.from_spec(TARGET, {"candidateWeight": 20}, kube)
    assert router.set_weights(50) == protocol.Weights(80.0, 20.0)
    assert router.finalize(Ending.PROMOTED) == protocol.Weights(80.0, 20.0)
    assert kube.writes == []


def test_registry_builds_the_one_provider_the_spec_names() -> None:
    kube = FakeKube()
    spec = {
        "baseline": {"deployment": "py", "service": "scorer-py"},
        "candidate": {"deployment": "rs", "service": "scorer-rs"},
        "trafficRouting": {"gatewayAPI": {"httpRoute": "scorer"}},
    }
    assert registry.build(NS, "scorer", canary_spec.parse_routing(spec), kube).provider == "gatewayAPI"
    assert (
        registry.build(
            NS, "s", canary_spec.parse_routing({**spec, "trafficRouting": {"replicas": {"total": 4}}}), kube
        ).provider
        == "replicas"
    )
    assert (
        registry.build(
            NS, "s", canary_spec.parse_routing({**spec, "trafficRouting": {"none": {}}}), kube
        ).provider
        == "none"
    )
    istio_spec = {**spec, "trafficRouting": {"istio": {"virtualService": {"name": "scorer"}}}}
    assert registry.build(NS, "s", canary_spec.parse_routing(istio_spec), kube).provider == "istio"
    nginx_spec = {**spec, "trafficRouting": {"nginx": {"ingress": "scorer"}}}
    assert registry.build(NS, "s", canary_spec.parse_routing(nginx_spec), kube).provider == "nginx"
    with pytest.raises(protocol.RoutingError, match="exactly one"):
        registry.build(
            NS,
            "s",
            canary_spec.parse_routing({**spec, "trafficRouting": {"none": {}, "replicas": {"total": 2}}}),
            kube,
        )
    with pytest.raises(protocol.RoutingError, match=r"spec\.trafficRouting\.smi: unknown provider"):
        registry.build(NS, "s", canary_spec.parse_routing({**spec, "trafficRouting": {"smi": {}}}), kube)
    with pytest.raises(protocol.RoutingError, match=r"spec\.baseline\.service"):
        registry.build(NS, "s", canary_spec.parse_routing({**spec, "baseline": {"deployment": "py"}}), kube)


def test_replica_router_rolls_back_to_the_whole_total_when_the_candidate_was_deleted() -> None:
    kube = FakeKube()
    kube.add("/apis/apps/v1/namespaces/shop/deployments/py", deployment("py", 5))
    router = replicas.ReplicaRouter(kube, TARGET, total=10)  # rs is gone
    assert router.finalize(Ending.ROLLED_BACK) == protocol.Weights(100.0, 0.0)
    assert kube.objects["/apis/apps/v1/namespaces/shop/deployments/py"]["spec"]["replicas"] == 10
    with pytest.raises(
        protocol.RoutingError, match=r"scaling rs \(spec\.candidate\.deployment\) to 5: .*not found"
    ):
        router.set_weights(50)  # but traffic never moves to a Deployment that is not there
