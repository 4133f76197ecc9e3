"""Credentials for the Kubernetes API: in-cluster service account first, then the kubeconfig.

The same precedence kopf uses, so the operator's own calls and kopf's watches hit the same cluster.
A command run by a person (the kubectl plugin) reads only a kubeconfig and its contexts, as kubectl
does: :func:`from_kubeconfig`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as _k8s_config
from kubernetes.config.config_exception import ConfigException

from ferrocanary.kube import rest

# The config loaders carry no annotations; going through Any keeps mypy's strictness elsewhere.
k8s_config: Any = _k8s_config


def api_client(kubeconfig: str | None = None) -> k8s.ApiClient:
    """An ApiClient for the service account when running in a pod, else for $KUBECONFIG / ~/.kube/config."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = k8s.Configuration()
        k8s_config.load_incluster_config(client_configuration=configuration)
        return k8s.ApiClient(configuration=configuration)
    api: k8s.ApiClient = k8s_config.new_client_from_config(
        config_file=kubeconfig or os.environ.get("KUBECONFIG")
    )
    return api


def connect(kubeconfig: str | None = None) -> rest.Rest:
    """The JSON transport over :func:`api_client`."""
    return rest.Rest(api_client(kubeconfig))


class ConfigError(Exception):
    """No usable kubeconfig: missing or unreadable file, unknown context, malformed entry."""


@dataclass(frozen=True)
class Session:
    """A kubeconfig context resolved: the transport to its server and the namespace it names."""

    api: rest.Rest
    namespace: str | None  # the context's namespace; None when it names none


def from_kubeconfig(
    kubeconfig: str | None, context: str | None, timeout: rest.Timeout = rest.INTERACTIVE_TIMEOUT
) -> Session:
    """kubectl's view of the cluster: ``context`` (default: the current one) of ``kubeconfig``.

    ``kubeconfig`` None is the client's default ($KUBECONFIG, then ~/.kube/config). Never the
    in-cluster service account: a person's command runs with the person's rights.
    """
    try:
        client = k8s_config.new_client_from_config(config_file=kubeconfig, context=context)
        contexts, current = k8s_config.list_kube_config_contexts(config_file=kubeconfig)
    except (ConfigException, OSError) as exc:
        raise ConfigError(str(exc)) from None
    chosen = next((c for c in contexts if c["name"] == context), current) if context else current
    namespace = (chosen or {}).get("context", {}).get("namespace")
    return Session(rest.Rest(client, timeout), str(namespace) if namespace else None)


@dataclass(frozen=True)
class Credentials:
    """Where and how to reach the API, for clients other than the kubernetes library (kopf's own)."""

    server: str
    ca_path: str | None
    insecure: bool
    certificate_path: str | None
    private_key_path: str | None
    scheme: str | None
    token: str | None = field(repr=False)


def credentials(kubeconfig: str | None = None) -> Credentials:
    """The credentials :func:`api_client` uses, resolved now (``$KUBECONFIG`` read at call time)."""
    configuration = api_client(kubeconfig).configuration
    header = configuration.get_api_key_with_prefix("BearerToken") or configuration.get_api_key_with_prefix(
        "authorization"
    )
    parts = header.split(" ", 1) if header else []
    scheme, token = (
        (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    )
    return Credentials(
        server=str(configuration.host),
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        scheme=scheme,
        token=token,
    )
