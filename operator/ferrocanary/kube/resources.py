"""Paths and small reads of the built-in objects the operator touches: Deployments, Secrets.

Routers build their own provider paths (HTTPRoute, VirtualService, ...); these are the shared ones.
"""

from __future__ import annotations

import base64

from ferrocanary.kube import rest


def deployment_path(namespace: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{rest.segment(namespace)}/deployments/{rest.segment(name)}"


def scale_path(namespace: str, name: str) -> str:
    return deployment_path(namespace, name) + "/scale"


def get_replicas(api: rest.JsonApi, namespace: str, name: str) -> int:
    """Desired replicas of a Deployment (its scale subresource); raises ``rest.NotFoundError``."""
    scale = api.get(scale_path(namespace, name))
    return int(scale.get("spec", {}).get("replicas", 0) or 0)


def set_replicas(api: rest.JsonApi, namespace: str, name: str, replicas: int) -> None:
    api.patch(scale_path(namespace, name), {"spec": {"replicas": int(replicas)}}, "merge")


def read_secret(api: rest.JsonApi, namespace: str, name: str, key: str) -> str:
    """One key of a Secret, decoded. The value is a credential: callers must never log it."""
    if not name:
        raise KeyError("no Secret name")  # an empty name would read the namespace's Secret list
    secret = api.get(f"/api/v1/namespaces/{rest.segment(namespace)}/secrets/{rest.segment(name)}")
    data = secret.get("data") or {}
    if key not in data:
        raise KeyError(f"Secret {namespace}/{name} has no key {key!r}")
    return base64.b64decode(data[key]).decode("utf-8").strip()
