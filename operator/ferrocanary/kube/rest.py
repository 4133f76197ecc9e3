"""JSON over the Kubernetes API: the one transport every other kube module (and every router) uses.

Generated model classes differ between client releases; the API's JSON does not. So this module
speaks plain dicts on resource paths (``/apis/apps/v1/namespaces/ns/deployments/x/scale``), turns
HTTP errors into a few typed exceptions, and exposes the ``JsonApi`` Protocol that routers and tests
code against. Authentication, TLS and the server address come from the kubernetes client's ApiClient.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Protocol

from kubernetes import client as k8s

PatchType = Literal["merge", "json"]
_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
}


class KubeError(Exception):
    """The API refused a request; ``status`` is the HTTP status, the message is the API's own."""

    def __init__(self, status: int, message: str, path: str) -> None:
        self.status = status
        self.path = path
        super().__init__(f"{path}: HTTP {status}: {message}")


class NotFoundError(KubeError):
    """HTTP 404: the object (or its API) does not exist."""


class ConflictError(KubeError):
    """HTTP 409: someone changed the object since we read it (optimistic concurrency)."""


class InvalidError(KubeError):
    """HTTP 422 (or a failed JSON-patch test): the request does not fit the object."""


def _error(status: int, body: str, path: str) -> KubeError:
    try:
        message = str(json.loads(body).get("message", body))
    except (ValueError, AttributeError):
        message = body[:500]
    kind: type[KubeError] = {404: NotFoundError, 409: ConflictError, 422: InvalidError}.get(status, KubeError)
    return kind(status, message, path)


class JsonApi(Protocol):
    """What routers and the reconciler need from the API: read, create, replace, patch and delete JSON."""

    def get(self, path: str) -> dict[str, Any]: ...

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def patch(self, path: str, body: Any, patch_type: PatchType = "merge") -> dict[str, Any]: ...

    def delete(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """DELETE; ``body`` is DeleteOptions, e.g. ``preconditions`` on uid and resourceVersion."""
        ...


class Rest:
    """``JsonApi`` over a kubernetes ``ApiClient`` (kubeconfig or in-cluster credentials)."""

    def __init__(self, api_client: k8s.ApiClient, timeout_seconds: float = 15.0) -> None:
        self._client = api_client
        self._timeout = timeout_seconds

    def _call(self, method: str, path: str, body: Any = None, content_type: str | None = None) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        _, url, headers, payload, _ = self._client.param_serialize(
            method=method, resource_path=path, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        response = self._client.call_api(
            method, url, header_params=headers, body=payload, _request_timeout=self._timeout
        )
        raw: Any = response.read()  # type: ignore[no-untyped-call]
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw or "")
        if not 200 <= int(response.status) < 300:
            raise _error(int(response.status), text, path)
        return json.loads(text) if text else {}

    def get(self, path: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", path)
        return result

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", path, body)
        return result

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("PUT", path, body)
        return result

    def patch(self, path: str, body: Any, patch_type: PatchType = "merge") -> dict[str, Any]:
        result: dict[str, Any] = self._call("PATCH", path, body, _CONTENT_TYPES[patch_type])
        return result

    def delete(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self._call("DELETE", path, body)
        return result
