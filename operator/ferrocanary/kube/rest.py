"""JSON over the Kubernetes API: the one transport every other kube module (and every router) uses.

Generated model classes differ between client releases; the API's JSON does not. So this module
speaks plain dicts on resource paths (``/apis/apps/v1/namespaces/ns/deployments/x/scale``), turns
HTTP errors into a few typed exceptions, and exposes the ``JsonApi`` Protocol that routers, the
kubectl plugin and tests code against. Authentication, TLS and the server address come from the
kubernetes client's ApiClient; a server that cannot be reached at all is ``UnreachableError``, so no
caller needs to know the kubernetes or urllib3 exception types.

Every call first takes a token from a client-side rate limit (``FERROCANARY_API_QPS``, default 50 per
second, bursts of ``FERROCANARY_API_BURST``, default 100; 0 switches it off), so no amount of canaries
can flood the apiserver from one operator. The default sits well above what 1,000 canaries in
1-minute blocks need (about 18 a second, docs/scale.md): at 20 the limit itself paced their looks and
most of a worker's time went to waiting for a token. A 429 (the apiserver's priority and fairness turning us
away) is retried up to ``RETRIES_429`` times after its ``Retry-After`` or an exponential backoff, each
wait capped at ``MAX_BACKOFF`` seconds; after that it is a ``KubeError`` like any other refusal.

Every request sent (each retry too) is counted in ``REQUESTS`` by verb (``get``, ``list``, ``patch``,
...), resource (``rustcanaries/status``) and HTTP status code (``unreachable`` when there was no
answer); the operator exports it on /metrics as ``ferrocanary_api_requests_total``. It counts the
calls this package makes, which are every call the operator makes except kopf's own (its watch
streams, its finalizer and peering writes).
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any, Literal, Protocol
from urllib.parse import quote

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

PatchType = Literal["merge", "json"]
# Seconds, or (connect, read): a tuple lets an interactive caller give up on a dead server quickly
# without cutting short a slow answer.
Timeout = float | tuple[float, float]
# For a person at a terminal (the kubectl plugin): a dead cluster must not hang it.
INTERACTIVE_TIMEOUT: Timeout = (5.0, 30.0)
_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
}


class KubeError(Exception):
    """The API refused a request; ``status`` is the HTTP status, the message is the API's own."""

    def __init__(
        self, status: int, message: str, path: str, *, reason: str = "", body: dict[str, Any] | None = None
    ) -> None:
        self.status = status
        self.path = path
        self.reason = reason  # the HTTP reason phrase ("Forbidden"), for answers without a message
        # The API's Status object as sent ({} when the answer was not JSON): callers that explain an
        # error read ``details`` from it, e.g. which name a 404 is about.
        self.body = body or {}
        super().__init__(f"{path}: HTTP {status}: {message}")


class NotFoundError(KubeError):
    """HTTP 404: the object (or its API) does not exist."""


class ConflictError(KubeError):
    """HTTP 409: someone changed the object since we read it (optimistic concurrency)."""


class InvalidError(KubeError):
    """HTTP 422 (or a failed JSON-patch test): the request does not fit the object."""


class UnreachableError(Exception):
    """No answer from the API server at all: connection refused, DNS, TLS, timeout.

    Deliberately not a ``KubeError``: code that handles a refusal (retry on conflict, treat 404 as
    gone) must not mistake a dead server for one.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def segment(value: str) -> str:
    """One path segment, percent-escaped: a name with ``/`` or ``..`` stays one segment of its own."""
    return quote(value, safe="")


def _error(status: int, body: str, path: str, reason: str = "") -> KubeError:
    try:
        parsed = json.loads(body)
        message = str(parsed.get("message", body))
    except (ValueError, AttributeError):
        parsed, message = {}, body[:500]
    kind: type[KubeError] = {404: NotFoundError, 409: ConflictError, 422: InvalidError}.get(status, KubeError)
    return kind(status, message, path, reason=reason, body=parsed if isinstance(parsed, dict) else {})


class JsonApi(Protocol):
    """What routers and the reconciler need from the API: read, create, replace, patch and delete JSON."""

    def get(self, path: str) -> dict[str, Any]: ...

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def patch(self, path: str, body: Any, patch_type: PatchType = "merge") -> dict[str, Any]: ...

    def delete(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """DELETE; ``body`` is DeleteOptions, e.g. ``preconditions`` on uid and resourceVersion."""
        ...


RETRIES_429 = 4
MAX_BACKOFF = 5.0
FIELD_MANAGER = "ferrocanary"
_WRITES = frozenset({"POST", "PUT", "PATCH"})


def _after_version(path: str) -> list[str]:
    """The path's segments after ``/api/v1`` or ``/apis/<group>/<version>`` and ``namespaces/<ns>``."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    parts = parts[2:] if parts[:1] == ["api"] else parts[3:] if parts[:1] == ["apis"] else parts
    return parts[2:] if len(parts) >= 3 and parts[0] == "namespaces" else parts


def resource_of(path: str) -> str:
    """The resource a request path names, with its subresource: ``rustcanaries/status``, ``events``."""
    parts = _after_version(path)
    if not parts:
        return ""
    return parts[0] if len(parts) < 3 else f"{parts[0]}/{parts[2]}"


def verb_of(method: str, path: str) -> str:
    """The API server's verb, lower case: a GET of a collection is a ``list``."""
    if method == "GET":
        return "get" if len(_after_version(path)) >= 2 else "list"
    return method.lower()


class RequestCounts:
    """Requests sent, by (verb, resource, code); thread-safe, for /metrics and benchmarks."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, str], int] = {}
        self._lock = threading.Lock()

    def add(self, method: str, path: str, code: str) -> None:
        key = (verb_of(method, path), resource_of(path), code)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def snapshot(self) -> dict[tuple[str, str, str], int]:
        with self._lock:
            return dict(self._counts)


REQUESTS = RequestCounts()


class RateLimit:
    """A token bucket: ``qps`` tokens a second, at most ``burst`` saved up; ``qps <= 0``: no limit."""

    def __init__(self, qps: float, burst: int) -> None:
        self.qps = qps
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._at = time.monotonic()
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> RateLimit:
        return cls(
            float(os.environ.get("FERROCANARY_API_QPS", "50") or 0),
            int(os.environ.get("FERROCANARY_API_BURST", "100") or 1),
        )

    def take(self) -> None:
        """Wait for a token (callers are worker threads: sleeping blocks only the caller)."""
        if self.qps <= 0:
            return
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.qps)
            self._at = now
            self._tokens -= 1.0
            wait = -self._tokens / self.qps if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)


def _backoff(attempt: int, retry_after: str | None) -> float:
    try:
        wanted = float(retry_after) if retry_after else 0.5 * 2**attempt
    except ValueError:
        wanted = 0.5 * 2**attempt
    return min(max(wanted, 0.1), MAX_BACKOFF)


class Rest:
    """``JsonApi`` over a kubernetes ``ApiClient`` (kubeconfig or in-cluster credentials)."""

    def __init__(
        self, api_client: k8s.ApiClient, timeout_seconds: Timeout = 15.0, limit: RateLimit | None = None
    ) -> None:
        self._client = api_client
        self._timeout = timeout_seconds
        self._limit = limit or RateLimit.from_env()
        # urllib3's default retry sleeps whatever Retry-After a 429 or 503 names (an hour, if asked),
        # inside the call; the capped retry in _call replaces it.
        pools = getattr(getattr(api_client, "rest_client", None), "pool_manager", None)
        if pools is not None:
            pools.connection_pool_kw["retries"] = urllib3.util.Retry(3, respect_retry_after_header=False)
            # Ticks run on up to 16 worker threads (FERROCANARY_WORKERS): a pool of 10 connections (the
            # client's default on 2 cores) would discard and re-open TLS connections under load.
            pools.connection_pool_kw["maxsize"] = max(int(pools.connection_pool_kw.get("maxsize") or 0), 32)
            pools.clear()
        self.requests = 0  # sent, for benchmarks

    @property
    def server(self) -> str:
        """The API server's address, for messages that say which cluster did not answer."""
        return str(self._client.configuration.host)

    def _call(self, method: str, path: str, body: Any = None, content_type: str | None = None) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        # Writes name their field manager, so managedFields (and `kubectl get --show-managed-fields`)
        # say which fields ferrocanary owns instead of the client library's "OpenAPI-Generator".
        query = [("fieldManager", FIELD_MANAGER)] if method in _WRITES else None
        _, url, headers, payload, _ = self._client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        for attempt in range(RETRIES_429 + 1):
            status, reason, text, retry_after = self._send(method, path, url, headers, payload)
            if status != 429 or attempt == RETRIES_429:
                break
            time.sleep(_backoff(attempt, retry_after))
        if not 200 <= status < 300:
            raise _error(status, text, path, reason)
        return json.loads(text) if text else {}

    def _send(
        self, method: str, path: str, url: str, headers: dict[str, str], payload: Any
    ) -> tuple[int, str, str, str | None]:
        """One request after the rate limit: (status, reason, body, Retry-After)."""
        self._limit.take()
        self.requests += 1
        # The body is read lazily, so a read timeout can come from read() as well as from call_api().
        try:
            response = self._client.call_api(
                method, url, header_params=headers, body=payload, _request_timeout=self._timeout
            )
            raw: Any = response.read()  # type: ignore[no-untyped-call]
        except urllib3.exceptions.HTTPError as exc:
            REQUESTS.add(method, path, "unreachable")
            raise UnreachableError(path, str(getattr(exc, "reason", None) or exc)) from exc
        except ApiException as exc:  # the client's wrapping of a TLS failure (status 0): no answer either
            REQUESTS.add(method, path, "unreachable")
            raise UnreachableError(path, str(exc.reason)) from exc
        REQUESTS.add(method, path, str(response.status))
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw or "")
        retry_after: str | None = response.getheader("Retry-After")  # type: ignore[no-untyped-call]
        return int(response.status), str(response.reason or ""), text, retry_after

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
