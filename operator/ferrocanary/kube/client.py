"""Credentials for the Kubernetes API: in-cluster service account first, then the kubeconfig.

The same precedence kopf uses, so the operator's own calls and kopf's watches hit the same cluster.
"""

from __future__ import annotations

import os
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as _k8s_config

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
