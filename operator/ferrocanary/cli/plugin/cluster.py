"""The plugin's cluster: RustCanaries of one kubeconfig context and namespace, through ferrocanary.kube.

The transport, its timeouts and the HTTP errors are kube/'s (``rest.Rest``, ``rest.KubeError``,
``rest.UnreachableError``); this module only says what an error means to the person at the
terminal, as kubectl would, and what to do about it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from ferrocanary.kube import canaries, rest
from ferrocanary.kube import client as kube_client

RESOURCE = f"{canaries.PLURAL}.{canaries.GROUP}"


class PluginError(Exception):
    """Something the user can fix; the message says what (printed as ``error: ...``)."""


class Cluster:
    """RustCanaries for one kubeconfig context and namespace (the context's when none is given)."""

    def __init__(self, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
        try:
            session = kube_client.from_kubeconfig(kubeconfig, context)
        except kube_client.ConfigError as exc:
            where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
            raise PluginError(f"no usable cluster configuration in {where}: {exc}") from None
        self.host = session.api.server
        self.namespace = namespace or session.namespace or "default"
        self.api: rest.JsonApi = session.api

    @contextlib.contextmanager
    def _errors(self, name: str = "") -> Iterator[None]:
        try:
            yield
        except rest.KubeError as exc:
            raise PluginError(self._explain(exc, name)) from None
        except rest.UnreachableError as exc:
            raise PluginError(
                f"cannot reach the cluster at {self.host}: {exc.reason}. Is it running, and are --context "
                "and --kubeconfig right?"
            ) from None

    def _explain(self, exc: rest.KubeError, name: str) -> str:
        message = exc.body.get("message") or exc.reason
        if exc.status == 404 and name and (exc.body.get("details") or {}).get("name") == name:
            return (
                f'rustcanary "{name}" not found in namespace "{self.namespace}" '
                f"(`kubectl ferrocanary get -n {self.namespace}` lists them)"
            )
        if exc.status == 404:
            return (
                f'the server doesn\'t have a resource type "{canaries.PLURAL}": install the RustCanary CRD '
                "(kubectl apply -f crds/rustcanaries.ferrocanary.io.yaml, or helm install charts/ferrocanary)"
            )
        if exc.status in (401, 403):
            return f"not allowed: {message}"
        return f"the API server refused the request (HTTP {exc.status}): {message}"

    def get(self, name: str) -> dict[str, Any]:
        with self._errors(name):
            return self.api.get(canaries.path(self.namespace, name))

    def metric_template(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The MetricTemplate ``name`` in ``namespace`` (default: this one), as a RustCanary's
        templateRef names it."""
        where = namespace or self.namespace
        with self._errors(name):
            try:
                return canaries.read_metric_template(self.api, where, name)
            except rest.NotFoundError:
                pass
        raise PluginError(
            f'metrictemplate "{name}" not found in namespace "{where}" (the canary\'s '
            "spec.analysis.metrics.templateRef names it; its CRD is crds/metrictemplates.ferrocanary.io.yaml)"
        )

    def list_all(self, all_namespaces: bool) -> list[dict[str, Any]]:
        """This namespace's RustCanaries (all namespaces' with ``all_namespaces``), by namespace, name."""
        with self._errors():
            items = canaries.list_objects(self.api, None if all_namespaces else self.namespace)
        return sorted(items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    def annotate(self, name: str, action: str) -> dict[str, Any]:
        """Ask the operator for ``action`` on ``name`` (the ``ferrocanary.io/action`` annotation)."""
        with self._errors(name):
            return canaries.request_action(self.api, self.namespace, name, action)
