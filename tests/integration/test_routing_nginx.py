"""The NGINX Ingress router against the real apiserver: Ingress is a built-in API, so the canary
Ingress it creates, updates and deletes is validated by Kubernetes' own networking.k8s.io/v1 rules."""

from __future__ import annotations

from typing import Any

import pytest

from ferrocanary.kube import rest
from ferrocanary.model import spec as canary_spec
from ferrocanary.model.decisions import Ending
from ferrocanary.routing import nginx, protocol, registry

pytestmark = pytest.mark.integration
WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"

SPEC: dict[str, Any] = {
    "baseline": {"deployment": "scorer-python", "service": "scorer-python"},
    "candidate": {"deployment": "scorer-rust", "service": "scorer-rust"},
    "trafficRouting": {"nginx": {"ingress": "scorer"}},
}


def stable_ingress(namespace: str) -> dict[str, Any]:
    def path(prefix: str, service: str) -> dict[str, Any]:
        backend = {"service": {"name": service, "port": {"number": 8080}}}
        return {"path": prefix, "pathType": "Prefix", "backend": backend}

    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "scorer", "namespace": namespace},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {
                    "host": "scorer.example.com",
                    "http": {"paths": [path("/v1", "scorer-python"), path("/admin", "admin")]},
                }
            ],
        },
    }


def test_a_canary_ingress_is_created_weighted_and_deleted_on_rollback(api: rest.Rest, namespace: str) -> None:
    api.post(nginx.ingress_path(namespace), stable_ingress(namespace))
    stable_version = api.get(nginx.ingress_path(namespace, "scorer"))["metadata"]["resourceVersion"]
    router = registry.build(namespace, "scorer", canary_spec.parse_routing(SPEC), api)
    assert router.get_weights() == protocol.Weights(100.0, 0.0)
    router.ensure()
    canary_path = nginx.ingress_path(namespace, "scorer-scorer-canary")
    canary = api.get(canary_path)
    assert canary["metadata"]["annotations"][WEIGHT] == "0"
    assert canary["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary"] == "true"
    assert canary["spec"]["ingressClassName"] == "nginx"
    assert [
        (p["path"], p["backend"]["service"]["name"]) for p in canary["spec"]["rules"][0]["http"]["paths"]
    ] == [("/v1", "scorer-rust")]
    for step in (5, 25, 50):
        assert router.set_weights(step) == protocol.Weights.of_candidate(step)
        assert router.get_weights() == protocol.Weights.of_candidate(step)
    assert api.get(canary_path)["metadata"]["annotations"][WEIGHT] == "50"
    assert router.finalize(Ending.PROMOTED) == protocol.Weights(0.0, 100.0)
    assert api.get(canary_path)["metadata"]["annotations"][WEIGHT] == "100"
    assert router.finalize(Ending.ROLLED_BACK) == protocol.Weights(100.0, 0.0)
    with pytest.raises(rest.NotFoundError):
        api.get(canary_path)
    assert router.finalize(Ending.ROLLED_BACK) == protocol.Weights(100.0, 0.0)  # idempotent
    # the team's Ingress was only ever read
    assert api.get(nginx.ingress_path(namespace, "scorer"))["metadata"]["resourceVersion"] == stable_version


def test_an_ingress_in_the_canarys_name_that_is_not_ours_is_left_alone(
    api: rest.Rest, namespace: str
) -> None:
    router = registry.build(namespace, "scorer", canary_spec.parse_routing(SPEC), api)
    with pytest.raises(
        protocol.RoutingError,
        match=rf"Ingress {namespace}/scorer \(spec\.trafficRouting\.nginx\.ingress\) not found",
    ):
        router.ensure()
    api.post(nginx.ingress_path(namespace), stable_ingress(namespace))
    squatter = stable_ingress(namespace)
    squatter["metadata"]["name"] = "scorer-scorer-canary"
    api.post(nginx.ingress_path(namespace), squatter)
    with pytest.raises(protocol.RoutingError, match="exists and is not ferrocanary's"):
        router.set_weights(10)
    with pytest.raises(protocol.RoutingError, match="exists and is not ferrocanary's"):
        router.finalize(Ending.ROLLED_BACK)
    assert api.get(nginx.ingress_path(namespace, "scorer-scorer-canary"))["spec"] == squatter["spec"]
