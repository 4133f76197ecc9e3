"""The Istio router against the real apiserver with Istio's own VirtualService CRD (istio.io/api,
fetched and pinned by the toolchain): every write it makes passes Istio's real schema."""

from __future__ import annotations

from typing import Any

import pytest

from ferrocanary.kube import rest
from ferrocanary.local.sandbox import Sandbox
from ferrocanary.model import spec as canary_spec
from ferrocanary.model.decisions import Ending
from ferrocanary.routing import istio, protocol, registry
from tests.support.canary import install_istio_crd

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def istio_crd(sandbox: Sandbox) -> None:
    install_istio_crd(sandbox)


SPEC: dict[str, Any] = {
    "baseline": {"deployment": "scorer-python", "service": "scorer-python"},
    "candidate": {"deployment": "scorer-rust", "service": "scorer-rust"},
    "trafficRouting": {"istio": {"virtualService": {"name": "scorer", "routes": ["api"]}}},
}


def virtual_service(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "scorer", "namespace": namespace},
        "spec": {
            "hosts": ["scorer.example.com"],
            "gateways": ["public"],
            "http": [
                {
                    "name": "api",
                    "match": [{"uri": {"prefix": "/v1"}}],
                    "route": [
                        {
                            "destination": {
                                "host": f"scorer-python.{namespace}.svc.cluster.local",
                                "port": {"number": 8080},
                            }
                        }
                    ],
                },
                {"name": "admin", "route": [{"destination": {"host": "admin", "port": {"number": 80}}}]},
            ],
        },
    }


def routes(api: rest.Rest, namespace: str) -> list[list[tuple[str, int | None]]]:
    vs = api.get(istio.virtual_service_path(namespace, "scorer"))
    return [
        [(d["destination"]["host"].split(".")[0], d.get("weight")) for d in http["route"]]
        for http in vs["spec"]["http"]
    ]


@pytest.mark.usefixtures("istio_crd")
def test_a_canary_walks_the_virtual_service_and_ends_as_written(api: rest.Rest, namespace: str) -> None:
    api.post(
        f"/apis/networking.istio.io/v1/namespaces/{namespace}/virtualservices", virtual_service(namespace)
    )
    router = registry.build(namespace, "scorer", canary_spec.parse_routing(SPEC), api)
    router.ensure()
    assert routes(api, namespace) == [[("scorer-python", 100), ("scorer-rust", 0)], [("admin", None)]]
    vs = api.get(istio.virtual_service_path(namespace, "scorer"))
    assert vs["spec"]["http"][0]["route"][1]["destination"] == {
        "host": f"scorer-rust.{namespace}.svc.cluster.local",  # the baseline's host form and port
        "port": {"number": 8080},
    }
    for step in (5, 25, 50):
        assert router.set_weights(step) == protocol.Weights.of_candidate(step)
        assert router.get_weights() == protocol.Weights.of_candidate(step)
    assert routes(api, namespace)[0] == [("scorer-python", 50), ("scorer-rust", 50)]
    assert router.finalize(Ending.PROMOTED) == protocol.Weights(0.0, 100.0)
    assert routes(api, namespace)[0] == [("scorer-python", 0), ("scorer-rust", 100)]
    assert router.finalize(Ending.ROLLED_BACK) == protocol.Weights(100.0, 0.0)
    # exactly as the team wrote it: a lone destination without a weight
    assert routes(api, namespace) == [[("scorer-python", None)], [("admin", None)]]


@pytest.mark.usefixtures("istio_crd")
def test_the_errors_name_the_virtual_service_and_the_field(api: rest.Rest, namespace: str) -> None:
    router = registry.build(namespace, "scorer", canary_spec.parse_routing(SPEC), api)
    with pytest.raises(
        protocol.RoutingError,
        match=rf"VirtualService {namespace}/scorer "
        r"\(spec\.trafficRouting\.istio\.virtualService\.name\) not found",
    ):
        router.ensure()
    body = virtual_service(namespace)
    body["spec"]["http"][0]["name"] = "v1"
    api.post(f"/apis/networking.istio.io/v1/namespaces/{namespace}/virtualservices", body)
    with pytest.raises(
        protocol.RoutingError, match=r"virtualService\.routes\[0\]: .* no http route named 'api'"
    ):
        router.ensure()


@pytest.mark.usefixtures("istio_crd")
def test_istios_schema_is_the_real_one(api: rest.Rest, namespace: str) -> None:
    """The CRD is Istio's, not a permissive stand-in: a weight that is not an integer is refused."""
    body = virtual_service(namespace)
    body["spec"]["http"][0]["route"][0]["weight"] = "half"
    with pytest.raises(rest.InvalidError, match="weight"):
        api.post(f"/apis/networking.istio.io/v1/namespaces/{namespace}/virtualservices", body)
