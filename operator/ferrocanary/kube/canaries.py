"""RustCanary objects on the API: read and list them, write status, request and clear a manual action.

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
    """The collection in ``namespace``, or one object in it (segments escaped: a name is never a path)."""
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{rest.segment(namespace)}/{PLURAL}"
    return f"{base}/{rest.segment(name)}" if name else base


def list_objects(api: rest.JsonApi, namespace: str | None) -> list[dict[str, Any]]:
    """Every RustCanary in ``namespace``, or in all namespaces when it is None (as the API orders them)."""
    collection = f"/apis/{GROUP}/{VERSION}/{PLURAL}" if namespace is None else path(namespace)
    items: list[dict[str, Any]] = api.get(collection).get("items", [])
    return items


def request_action(api: rest.JsonApi, namespace: str, name: str, action: str) -> dict[str, Any]:
    """Set the action annotation the operator acts on at its next tick (a newer request replaces one)."""
    body = {"metadata": {"annotations": {ACTION_ANNOTATION: action}}}
    return api.patch(path(namespace, name), body, "merge")


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


_CLEAR_ATTEMPTS = 3


def clear_action(api: rest.JsonApi, namespace: str, name: str, value: str) -> bool:
    """Remove the action annotation if it still says ``value`` (a newer action is left for the next tick).

    A JSON-patch ``test`` on the value does it in one request, whoever else writes the object. The
    apiserver refuses that test (422) for values with some non-ASCII characters, which left such an
    action to be handled, and reported, at every tick: then the value is compared here and the
    removal guarded by the resourceVersion read with it, retried if another writer got in between.
    """
    key = ACTION_ANNOTATION.replace("~", "~0").replace("/", "~1")
    remove = {"op": "remove", "path": f"/metadata/annotations/{key}"}
    try:
        api.patch(
            path(namespace, name), [{"op": "test", "path": remove["path"], "value": value}, remove], "json"
        )
    except rest.InvalidError:
        return _clear_by_version(api, namespace, name, value, remove)
    except (rest.NotFoundError, rest.ConflictError):
        return False
    return True


def _clear_by_version(
    api: rest.JsonApi, namespace: str, name: str, value: str, remove: dict[str, str]
) -> bool:
    for _ in range(_CLEAR_ATTEMPTS):
        try:
            meta = api.get(path(namespace, name)).get("metadata") or {}
        except rest.KubeError:
            return False
        if (meta.get("annotations") or {}).get(ACTION_ANNOTATION) != value:
            return False  # gone already, or replaced by a newer action
        version = {
            "op": "test",
            "path": "/metadata/resourceVersion",
            "value": str(meta.get("resourceVersion", "")),
        }
        try:
            api.patch(path(namespace, name), [version, remove], "json")
        except rest.InvalidError:
            continue  # someone else wrote the object in between: read it again
        except (rest.NotFoundError, rest.ConflictError):
            return False
        return True
    return False


TEMPLATE_PLURAL = "metrictemplates"


def read_metric_template(api: rest.JsonApi, namespace: str, name: str) -> dict[str, Any]:
    """The MetricTemplate ``namespace/name`` (raises rest.NotFoundError when there is none)."""
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{rest.segment(namespace)}/{TEMPLATE_PLURAL}"
    found: dict[str, Any] = api.get(f"{base}/{rest.segment(name)}")
    return found
