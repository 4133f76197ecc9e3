"""An in-memory Kubernetes API for unit tests: ``FakeKube`` behaves like the apiserver on the calls
the operator makes.

``FakeKube`` implements the ``kube.rest.JsonApi`` Protocol (GET, POST, PUT with resourceVersion
checks, merge and JSON patches, DELETE with preconditions, the Deployment scale subresource); the real
apiserver runs the same code in tests/integration.
"""

from __future__ import annotations

import copy
import itertools
import urllib.parse
from typing import Any

from ferrocanary.kube import rest


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


class FakeKube:
    """An in-memory ``JsonApi``: objects by path, a resourceVersion per write, Events collected."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.writes: list[tuple[str, str]] = []
        self._rv = itertools.count(1)

    def add(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {})["resourceVersion"] = str(next(self._rv))
        obj["metadata"].setdefault("generation", 1)
        self.objects[path] = obj
        return obj

    def _base(self, path: str) -> tuple[str, str]:
        for sub in ("/status", "/scale"):
            if path.endswith(sub):
                return path[: -len(sub)], sub
        return path, ""

    def _find(self, path: str) -> dict[str, Any]:
        if path not in self.objects:
            raise rest.NotFoundError(404, "not found", path)
        return self.objects[path]

    def get(self, path: str) -> dict[str, Any]:
        if "?" in path:  # a list with a label selector (the only query the operator sends)
            collection, query = path.split("?", 1)
            wanted = urllib.parse.parse_qs(query).get("labelSelector", [""])[0]
            labels = dict(pair.split("=", 1) for pair in wanted.split(",") if pair)
            return {
                "items": [
                    copy.deepcopy(o)
                    for p, o in self.objects.items()
                    if p.rsplit("/", 1)[0] == collection
                    and labels.items() <= ((o.get("metadata") or {}).get("labels") or {}).items()
                ]
            }
        base, sub = self._base(path)
        if base not in self.objects and not sub:
            members = [copy.deepcopy(o) for p, o in self.objects.items() if p.rsplit("/", 1)[0] == base]
            if members:  # a collection: the API lists it
                return {"items": members}
        obj = self._find(base)
        if sub == "/scale":
            return {"spec": {"replicas": obj["spec"].get("replicas", 1)}}
        found = copy.deepcopy(obj)
        if "/deployments/" in base:
            # An ideal Deployment controller: it has seen the current spec and updated every replica
            # at once, and every replica is available. A test that wants a candidate short of
            # replicas, or a rollout in progress, writes those status fields itself.
            replicas = found.get("spec", {}).get("replicas", 1)
            status = found.setdefault("status", {"availableReplicas": replicas})
            status.setdefault("updatedReplicas", replicas)
            status.setdefault("observedGeneration", found["metadata"].get("generation", 1))
        return found

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path.endswith("/events"):
            self.events.append(copy.deepcopy(body))
            return body
        return self.add(f"{path}/{body['metadata']['name']}", body)

    def _store(self, base: str, obj: dict[str, Any], kind: str) -> dict[str, Any]:
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        self.objects[base] = obj
        self.writes.append((kind, base))
        return copy.deepcopy(obj)

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        current = self._find(path)
        if body.get("metadata", {}).get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise rest.ConflictError(409, "the object has been modified", path)
        return self._store(path, copy.deepcopy(body), "put")

    def delete(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        current = self._find(path)
        wanted = (body or {}).get("preconditions") or {}
        for key in ("uid", "resourceVersion"):
            if key in wanted and wanted[key] != current["metadata"].get(key):
                raise rest.ConflictError(409, f"precondition failed: {key}", path)
        self.writes.append(("delete", path))
        return self.objects.pop(path)

    def patch(self, path: str, body: Any, patch_type: rest.PatchType = "merge") -> dict[str, Any]:
        base, sub = self._base(path)
        current = self._find(base)
        if patch_type == "json":
            return self._store(base, _json_patched(current, body, path), "patch")
        wanted_rv = (body.get("metadata") or {}).get("resourceVersion")
        if wanted_rv is not None and wanted_rv != current["metadata"]["resourceVersion"]:
            raise rest.ConflictError(409, "the object has been modified", path)
        body = {k: v for k, v in body.items() if k != "metadata"} | (
            {"metadata": {k: v for k, v in body["metadata"].items() if k != "resourceVersion"}}
            if "metadata" in body
            else {}
        )
        if sub == "/scale":
            obj = merge(current, {"spec": {"replicas": body["spec"]["replicas"]}})
        elif sub == "/status":
            obj = merge(current, {"status": body.get("status", {})})
        else:
            obj = merge(current, {k: v for k, v in body.items() if k != "status"})
        return self._store(base, obj, f"patch{sub}")


def _json_patched(current: dict[str, Any], ops: list[dict[str, Any]], path: str) -> dict[str, Any]:
    """RFC 6902 test, remove, add and replace on a copy, as the apiserver applies them (422 on failure)."""
    obj = copy.deepcopy(current)
    for op in ops:
        keys = [k.replace("~1", "/").replace("~0", "~") for k in op["path"].split("/")[1:]]
        parent = obj
        for key in keys[:-1]:
            parent = parent.setdefault(key, {})
        if op["op"] == "test" and parent.get(keys[-1]) != op["value"]:
            raise rest.InvalidError(422, "test failed", path)
        if op["op"] == "remove":
            if keys[-1] not in parent:
                raise rest.InvalidError(422, "nothing to remove", path)
            del parent[keys[-1]]
        if op["op"] in ("add", "replace"):
            parent[keys[-1]] = op["value"]
    return obj


def deployment(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas},
    }
