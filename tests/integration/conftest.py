"""Fixtures for integration tests: one real sandbox per test session, a fresh namespace per test.

The sandbox is a real etcd + kube-apiserver + controller-manager + scheduler + kwok + Prometheus
(``ferrocanary.local``), started once per pytest session under a name unique to this process so
that two test runs never collide, and stopped by pid at the end, also when tests fail. Set
``FERROCANARY_TEST_SANDBOX=<name>`` to reuse a sandbox you started yourself (it is left running).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client, config

from ferrocanary.kube import rest
from ferrocanary.local.sandbox import Sandbox
from tests.support.canary import install_crd


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    reuse = os.environ.get("FERROCANARY_TEST_SANDBOX")
    if reuse:
        existing = Sandbox(reuse)
        if not existing.is_up():
            pytest.fail(f"FERROCANARY_TEST_SANDBOX={reuse} is not up: {existing.status()}")
        yield existing
        return
    box = Sandbox(f"pytest-{os.getpid()}")
    try:
        box.up()
        yield box
    finally:
        box.down()


@pytest.fixture(scope="session")
def kube_api(sandbox: Sandbox) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(sandbox.kubeconfig))


@pytest.fixture(scope="session")
def api(kube_api: client.ApiClient) -> rest.Rest:
    """The operator's own API client on the sandbox (what kube/ gives the handlers)."""
    return rest.Rest(kube_api)


@pytest.fixture(scope="session")
def crd(sandbox: Sandbox) -> None:
    """The CRDs installed once per session (a module may override this, see test_hostile_specs)."""
    install_crd(sandbox)


@pytest.fixture
def namespace(kube_api: client.ApiClient) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards whatever the outcome."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(kube_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")
