"""The platform decides where the Prometheus token may go and whether TLS may go unverified.

A RustCanary names any address it likes; the operator's TokenPolicy (from its environment, set by the
chart) refuses to read the token Secret for an address it does not list, and refuses
``insecureSkipVerify`` unless allowed. The refusal is a hold with its own reason, naming the setting.
"""

from __future__ import annotations

from typing import Any

import pytest

from ferrocanary.handlers import startup
from ferrocanary.metrics import prometheus, protocol
from ferrocanary.model import spec as canary_spec


class _NoSecrets:
    """Any API call means the token was read for an address that may not receive it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the source called the API ({name}) for a refused address")


def _prom(address: str, secret: str | None = "prom-token", verify: bool = True) -> canary_spec.PrometheusSpec:
    return canary_spec.PrometheusSpec(address=address, secret_name=secret, verify_tls=verify)


POLICY = prometheus.TokenPolicy(("https://prometheus.monitoring.svc:9090",), allow_insecure_tls=False)


@pytest.mark.parametrize(
    "address",
    [
        "https://attacker.example.com",
        "http://prometheus.monitoring.svc:9090",  # the right host over plain http
        "https://prometheus.monitoring.svc:9091",
        "https://prometheus.monitoring.svc.attacker.example.com:9090",
    ],
)
def test_a_token_is_never_read_for_an_address_the_platform_does_not_list(address: str) -> None:
    with pytest.raises(protocol.MetricsNotAllowedError, match="may not receive the Prometheus token"):
        prometheus.from_spec(_NoSecrets(), "shop", _prom(address), POLICY)  # type: ignore[arg-type]


def test_a_listed_address_or_no_token_at_all_is_allowed() -> None:
    listed = prometheus.from_spec(
        _NoSecrets(), "shop", _prom("https://PROMETHEUS.monitoring.svc:9090/", None), POLICY
    )  # type: ignore[arg-type]
    assert "prometheus.monitoring.svc" in repr(listed).lower()
    anywhere = prometheus.from_spec(_NoSecrets(), "shop", _prom("http://other:9090", None), POLICY)  # type: ignore[arg-type]
    assert "other" in repr(anywhere)


def test_unverified_tls_needs_the_platforms_permission() -> None:
    with pytest.raises(protocol.MetricsNotAllowedError, match="insecureSkipVerify"):
        prometheus.from_spec(_NoSecrets(), "shop", _prom("https://x:9090", None, verify=False), POLICY)  # type: ignore[arg-type]


def test_the_policy_comes_from_the_operators_environment() -> None:
    assert startup.token_policy({}) == prometheus.TokenPolicy(None, allow_insecure_tls=True)
    listed = startup.token_policy(
        {
            "FERROCANARY_PROMETHEUS_TOKEN_ADDRESSES": " https://a:9090 , http://b ",
            "FERROCANARY_PROMETHEUS_ALLOW_INSECURE_TLS": "false",
        }
    )
    assert listed == prometheus.TokenPolicy(("https://a:9090", "http://b"), allow_insecure_tls=False)
    assert startup.token_policy({"FERROCANARY_PROMETHEUS_TOKEN_ADDRESSES": ""}).token_addresses == ()


def test_an_address_with_credentials_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"spec\.analysis\.prometheus\.address: must not carry credentials"):
        canary_spec.parse({"analysis": {"prometheus": {"address": "http://u:p@prom:9090"}}})
