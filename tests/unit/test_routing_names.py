"""Each router refuses an object name that could reach outside the canary's namespace, naming the field.

The names come from ``spec.trafficRouting.<provider>`` and end up in API paths; the CRD's pattern
refuses them too, but a router must not depend on the CRD being current.
"""

from __future__ import annotations

from typing import Any

import pytest

from ferrocanary.routing import gateway_api, istio, nginx, protocol

TARGET = protocol.RouteTarget("shop", "scorer", "py", "rs", "scorer-py", "scorer-rs", "scorer", 8080)
HOSTILE = ["../../kube-system/httproutes/x", "x/status", "X", "a b", "x" * 254]


class _NoApi:
    """Any call means the router went to the API with a name it should have refused."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the router called the API ({name}) before checking its names")


@pytest.mark.parametrize("name", HOSTILE)
def test_the_gateway_router_refuses_a_hostile_httproute_name(name: str) -> None:
    with pytest.raises(protocol.RoutingError, match=r"spec\.trafficRouting\.gatewayAPI\.httpRoute"):
        gateway_api.from_spec(TARGET, {"httpRoute": name}, _NoApi())  # type: ignore[arg-type]


@pytest.mark.parametrize("name", HOSTILE)
def test_the_istio_router_refuses_a_hostile_virtualservice_name(name: str) -> None:
    with pytest.raises(protocol.RoutingError, match=r"spec\.trafficRouting\.istio\.virtualService\.name"):
        istio.from_spec(TARGET, {"virtualService": {"name": name}}, _NoApi())  # type: ignore[arg-type]


@pytest.mark.parametrize("name", HOSTILE)
def test_the_nginx_router_refuses_a_hostile_ingress_name(name: str) -> None:
    with pytest.raises(protocol.RoutingError, match=r"spec\.trafficRouting\.nginx\.ingress"):
        nginx.from_spec(TARGET, {"ingress": name}, _NoApi())  # type: ignore[arg-type]
