"""The candidate's health as the apiserver reports it: Deployment availability and pod faults.

Traffic may move only to a candidate whose Deployment has the replicas it asked for available,
and a candidate whose pods crash or cannot pull their image must roll back at once, with its cause
named, instead of making its signals go missing (a Service without endpoints answers nothing the
candidate's own metrics would show). Both come from the apiserver, not Prometheus: the Deployment's
``status`` (written by the Deployment controller) and each pod's ``containerStatuses`` (written by
the kubelet).

Memory faults keep their name: an OOM kill, SIGSEGV (exit 139), SIGABRT (134) and a Rust panic
(exit 101) are the memory-fault KPI's causes; any other non-zero exit is a crash.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ferrocanary.kube import rest
from ferrocanary.kube.resources import deployment_path

MEMORY_EXIT_CODES = {101: "Rust panic", 134: "SIGABRT", 139: "SIGSEGV"}
IMAGE_PULL_REASONS = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName"})


class FaultKind(StrEnum):
    MEMORY = "memory"
    CRASH = "crash"
    IMAGE = "image"


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    message: str  # names the pod, the container and the cause


@dataclass(frozen=True)
class Health:
    """``desired``/``available`` replicas of the Deployment and the first pod fault found, if any.

    ``rolled_out`` is ``kubectl rollout status``'s test: the Deployment controller has seen the
    current spec and every replica runs it. Without it a candidate just edited (a new image, a new
    template) still shows the old pods' availability for a moment, and traffic would move to a
    rollout that may never finish.
    """

    desired: int
    available: int
    fault: Fault | None = None
    rolled_out: bool = True

    @property
    def available_as_desired(self) -> bool:
        return self.rolled_out and self.available >= self.desired


def pods_path(namespace: str, selector: Mapping[str, str]) -> str:
    labels = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    return f"/api/v1/namespaces/{rest.segment(namespace)}/pods?" + urllib.parse.urlencode(
        {"labelSelector": labels}
    )


def read(api: rest.JsonApi, namespace: str, deployment: str) -> Health:
    """The Deployment's availability and its pods' faults; raises ``rest.KubeError`` (NotFoundError)."""
    found = api.get(deployment_path(namespace, deployment))
    spec, status = found.get("spec") or {}, found.get("status") or {}
    desired = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    available = int(status.get("availableReplicas") or 0)
    generation = int((found.get("metadata") or {}).get("generation") or 0)
    rolled_out = int(status.get("observedGeneration") or 0) >= generation and (
        int(status.get("updatedReplicas") or 0) >= desired
    )
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    fault = None
    if selector:
        pods = api.get(pods_path(namespace, selector)).get("items") or []
        fault = next(iter(faults(pods)), None)
    return Health(desired, available, fault, rolled_out)


def faults(pods: Iterable[Mapping[str, Any]]) -> Iterable[Fault]:
    """Every container fault in ``pods``: a restart after a non-zero exit, or a waiting reason that
    will not clear by itself (crash loop, image pull)."""
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name", "?")
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        for container in statuses:
            found = _container_fault(name, container)
            if found is not None:
                yield found


def _container_fault(pod: str, container: Mapping[str, Any]) -> Fault | None:
    where = f"pod {pod}, container {container.get('name', '?')}"
    for state in (container.get("lastState") or {}, container.get("state") or {}):
        terminated = state.get("terminated") or {}
        code = int(terminated.get("exitCode") or 0)
        if code:
            return _exit_fault(where, code, str(terminated.get("reason") or ""))
    waiting = ((container.get("state") or {}).get("waiting") or {}).get("reason") or ""
    if waiting in IMAGE_PULL_REASONS:
        return Fault(FaultKind.IMAGE, f"{where}: {waiting} (the candidate's image cannot be pulled)")
    if waiting == "CrashLoopBackOff":
        return Fault(FaultKind.CRASH, f"{where}: CrashLoopBackOff")
    return None


def _exit_fault(where: str, code: int, reason: str) -> Fault:
    if reason == "OOMKilled":
        return Fault(FaultKind.MEMORY, f"{where}: OOMKilled (exit {code})")
    if code in MEMORY_EXIT_CODES:
        return Fault(FaultKind.MEMORY, f"{where}: {MEMORY_EXIT_CODES[code]} (exit {code})")
    return Fault(FaultKind.CRASH, f"{where}: exited with code {code}" + (f" ({reason})" if reason else ""))
