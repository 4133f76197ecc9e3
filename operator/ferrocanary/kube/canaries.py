"""RustCanary objects on the API: read one, write its status, clear a handled manual action.

Status is written with the resourceVersion the tick read, so a tick that raced a user's edit (a new
annotation, a spec change) fails with ``rest.ConflictError`` and the next tick starts from the fresh
object instead of overwriting it.
"""

from __future__ import annotations

from typing import Any

from ferrocanary.kube import rest

GROUP = "ferrocanary.io"
VERSION = "v1alpha1"
PLURAL = "rustcanaries"
KIND = "RustCanary"
API_VERSION = f"{GROUP}/{VERSION}"
ACTION_ANNOTATION = "ferrocanary.io/action"


def path(namespace: str, name: str = "") -> str:
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    return f"{base}/{name}" if name else base


def get(api: rest.JsonApi, namespace: str, name: str) -> dict[str, Any] | None:
    """The object, or None when it is gone."""
    try:
        return api.get(path(namespace, name))
    except rest.NotFoundError:
        return None


def patch_status(
    api: rest.JsonApi, namespace: str, name: str, status: dict[str, Any], resource_version: str
) -> dict[str, Any]:
    """Merge-patch ``.status``; raises ``rest.ConflictError`` when the object changed since it was read."""
    body = {"metadata": {"resourceVersion": resource_version}, "status": status}
    return api.patch(path(namespace, name) + "/status", body, "merge")


def clear_action(api: rest.JsonApi, namespace: str, name: str, value: str) -> bool:
    """Remove the action annotation if it still says ``value`` (a newer action is left for the next tick)."""
    key = ACTION_ANNOTATION.replace("~", "~0").replace("/", "~1")
    ops = [
        {"op": "test", "path": f"/metadata/annotations/{key}", "value": value},
        {"op": "remove", "path": f"/metadata/annotations/{key}"},
    ]
    try:
        api.patch(path(namespace, name), ops, "json")
    except (rest.InvalidError, rest.NotFoundError, rest.ConflictError):
        return False
    return True
