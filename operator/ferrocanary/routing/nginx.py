"""NGINX Ingress routing: a canary Ingress beside the team's Ingress, weighted by ``canary-weight``.

The team owns the stable Ingress (``trafficRouting.nginx.ingress``); its paths send traffic to the
baseline's Service. ingress-nginx splits a host and path between two Ingresses when the second carries
``<prefix>/canary: "true"`` and ``<prefix>/canary-weight: "<w>"``, so ``ensure`` creates (or brings
up to date) a canary Ingress ``<ingress>-<canary>-canary``: the stable Ingress's rules that reach the
baseline Service (and its defaultBackend if it is the baseline), pointed at the candidate's Service,
with its ingressClassName and TLS, at weight 0. ``set_weights``/``get_weights`` write and read the
canary-weight annotation (a ``canary-weight-total`` someone added is read, and dropped on our next
write, since our weights are percents).

``finalize`` mirrors gateway_api's ends: promoted leaves the canary Ingress at weight 100; rolled back
*deletes* the canary Ingress, as gateway_api removes the candidate backendRef, so only what the team
wrote is left (a leftover canary at 0 would also block the next canary of the same host and path,
since ingress-nginx honours one canary per path). The delete carries uid and resourceVersion
preconditions and touches only an Ingress whose annotation names this RustCanary.

No owner reference on the canary Ingress, on purpose: after a promotion it carries all the traffic,
and garbage collection on deleting the RustCanary would silently send that traffic back to Python.
The stable Ingress is never written.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ferrocanary.kube import rest
from ferrocanary.model.decisions import Ending
from ferrocanary.routing import protocol

PROVIDER = "nginx"
DEFAULT_PREFIX = "nginx.ingress.kubernetes.io"
FIELD = "spec.trafficRouting.nginx"
MANAGED_BY = "app.kubernetes.io/managed-by"
OWNER_ANNOTATION = "ferrocanary.io/rustcanary"
_CLASS_ANNOTATION = "kubernetes.io/ingress.class"  # the legacy class selector: the canary must match it


def ingress_path(namespace: str, name: str = "") -> str:
    base = f"/apis/networking.k8s.io/v1/namespaces/{rest.segment(namespace)}/ingresses"
    return f"{base}/{rest.segment(name)}" if name else base


def canary_name(ingress: str, canary: str) -> str:
    return f"{ingress}-{canary}-canary"


def _service_of(backend: Any) -> Any:
    return ((backend or {}).get("service") or {}).get("name")


class NginxRouter:
    """A ``TrafficRouter`` that owns one canary Ingress next to the team's stable Ingress."""

    def __init__(
        self, api: rest.JsonApi, target: protocol.RouteTarget, ingress: str, prefix: str = DEFAULT_PREFIX
    ) -> None:
        self._api = api
        self._ns = target.namespace
        self._canary = target.canary
        self._stable = ingress
        self._name = canary_name(ingress, target.canary)
        self._baseline, self._candidate = protocol.two_services(target, PROVIDER)
        self._weight_key = f"{prefix}/canary-weight"
        self._total_key = f"{prefix}/canary-weight-total"
        self._canary_key = f"{prefix}/canary"

    @property
    def provider(self) -> str:
        return PROVIDER

    @property
    def _what(self) -> str:
        return f"canary Ingress {self._ns}/{self._name}"

    def _to_candidate(self, backend: Mapping[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(dict(backend))
        out["service"]["name"] = self._candidate
        return out

    def _canary_spec(self, stable: Mapping[str, Any]) -> dict[str, Any]:
        """The stable Ingress's routes to the baseline Service, sent to the candidate's instead."""
        ingress = stable.get("spec") or {}
        if (stable.get("metadata", {}).get("annotations") or {}).get(self._canary_key) == "true":
            raise protocol.RoutingError(
                f"{FIELD}.ingress: Ingress {self._ns}/{self._stable} is itself a canary"
            )
        rules = []
        for rule in ingress.get("rules") or []:
            paths = [
                {**path, "backend": self._to_candidate(path["backend"])}
                for path in (rule.get("http") or {}).get("paths") or []
                if _service_of(path.get("backend")) == self._baseline
            ]
            if paths:
                rules.append({**{k: v for k, v in rule.items() if k != "http"}, "http": {"paths": paths}})
        wanted: dict[str, Any] = {"rules": rules} if rules else {}
        if _service_of(ingress.get("defaultBackend")) == self._baseline:
            wanted["defaultBackend"] = self._to_candidate(ingress["defaultBackend"])
        if not wanted:
            raise protocol.RoutingError(
                f"{FIELD}.ingress: Ingress {self._ns}/{self._stable} has no path "
                f"with a backend to Service {self._baseline}"
            )
        for key in ("ingressClassName", "tls"):
            if key in ingress:
                wanted[key] = copy.deepcopy(ingress[key])
        return wanted

    def _check_ours(self, canary: Mapping[str, Any]) -> None:
        annotations = canary.get("metadata", {}).get("annotations") or {}
        if annotations.get(OWNER_ANNOTATION) != self._canary:
            raise protocol.RoutingError(
                f"{self._what} exists and is not ferrocanary's for RustCanary {self._ns}/{self._canary} "
                f"(annotation {OWNER_ANNOTATION}); rename or remove it"
            )

    def _apply(self, weight: int | None) -> dict[str, Any]:
        """Create or update the canary Ingress; ``weight=None`` keeps the weight it has (0 when new)."""
        stable = protocol.read_object(
            self._api,
            ingress_path(self._ns, self._stable),
            f"Ingress {self._ns}/{self._stable} ({FIELD}.ingress)",
        )
        canary_spec = self._canary_spec(stable)
        stable_class = (stable.get("metadata", {}).get("annotations") or {}).get(_CLASS_ANNOTATION)
        try:
            self._api.get(ingress_path(self._ns, self._name))
        except rest.NotFoundError:
            body = {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {
                    "name": self._name,
                    "namespace": self._ns,
                    "labels": {MANAGED_BY: "ferrocanary"},
                    "annotations": {
                        OWNER_ANNOTATION: self._canary,
                        self._canary_key: "true",
                        self._weight_key: str(weight or 0),
                        **({_CLASS_ANNOTATION: stable_class} if stable_class else {}),
                    },
                },
                "spec": canary_spec,
            }
            try:
                return self._api.post(ingress_path(self._ns), body)
            except rest.ConflictError:
                pass  # created by someone in the meantime: bring it up to date below
            except rest.KubeError as exc:
                raise protocol.RoutingError(f"{self._what}: {exc}") from None
        except rest.KubeError as exc:
            raise protocol.RoutingError(f"{self._what}: {exc}") from None

        def change(canary: dict[str, Any]) -> None:
            self._check_ours(canary)
            canary["spec"] = canary_spec
            annotations = canary["metadata"].setdefault("annotations", {})
            annotations[self._canary_key] = "true"
            if weight is not None or self._weight_key not in annotations:
                annotations[self._weight_key] = str(weight or 0)
                annotations.pop(self._total_key, None)  # our weights are percents: the default total, 100

        return protocol.replace_object(self._api, ingress_path(self._ns, self._name), self._what, change)

    def _weights(self, canary: Mapping[str, Any]) -> protocol.Weights:
        annotations = canary.get("metadata", {}).get("annotations") or {}
        if annotations.get(self._canary_key) != "true":
            return protocol.Weights(100.0, 0.0)  # not (or no longer) a canary: ingress-nginx ignores it
        try:
            weight = int(annotations.get(self._weight_key, "0"))
            total = int(annotations.get(self._total_key, "100"))
        except ValueError:
            raise protocol.RoutingError(
                f"{self._what}: annotation {self._weight_key} or {self._total_key} is not an integer"
            ) from None
        if total <= 0:
            raise protocol.RoutingError(f"{self._what}: annotation {self._total_key} must be positive")
        return protocol.Weights.of_candidate(100.0 * max(0, min(weight, total)) / total)

    def ensure(self) -> None:
        self._apply(None)

    def get_weights(self) -> protocol.Weights:
        try:
            canary = self._api.get(ingress_path(self._ns, self._name))
        except rest.NotFoundError:
            return protocol.Weights(100.0, 0.0)  # no canary Ingress: the stable one takes everything
        except rest.KubeError as exc:
            raise protocol.RoutingError(f"{self._what}: {exc}") from None
        return self._weights(canary)

    def set_weights(self, candidate_percent: int) -> protocol.Weights:
        percent = max(0, min(100, int(candidate_percent)))
        return self._weights(self._apply(percent))

    def finalize(self, ending: Ending) -> protocol.Weights:
        if ending is Ending.PROMOTED:
            return self.set_weights(100)
        try:
            canary = self._api.get(ingress_path(self._ns, self._name))
            self._check_ours(canary)
            meta = canary["metadata"]
            preconditions = {"uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")}
            self._api.delete(ingress_path(self._ns, self._name), {"preconditions": preconditions})
        except rest.NotFoundError:
            pass  # already gone: rolled back
        except rest.KubeError as exc:
            raise protocol.RoutingError(f"{self._what}: {exc}") from None
        return protocol.Weights(100.0, 0.0)


def from_spec(target: protocol.RouteTarget, config: Mapping[str, Any], api: rest.JsonApi) -> NginxRouter:
    ingress = config.get("ingress")
    if not isinstance(ingress, str) or not ingress:
        raise protocol.RoutingError(f"{FIELD}.ingress is required")
    prefix = config.get("annotationPrefix") or DEFAULT_PREFIX
    if not isinstance(prefix, str):
        raise protocol.RoutingError(f"{FIELD}.annotationPrefix must be a string")
    return NginxRouter(api, target, protocol.checked_name(ingress, f"{FIELD}.ingress"), prefix)
