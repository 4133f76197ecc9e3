"""The operator's world for unit tests, one tick at a time: an in-memory API (``FakeKube``) holding
the two Deployments and a RustCanary, a simulated clock, a model-driven metrics source, and the
operator's dependencies (recreated to simulate a restart).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ferrocanary import reconcile
from ferrocanary.kube import canaries
from tests.fakes.kube import FakeKube, deployment
from tests.fakes.metrics import ModelSource

NS, NAME = "shop", "scorer"
PATH = canaries.path(NS, NAME)
BASE = "/apis/apps/v1/namespaces/shop/deployments/"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "baseline": {"deployment": "py"},
        "candidate": {"deployment": "rs"},
        "service": {"name": "scorer", "port": 8080},
        "trafficRouting": {"replicas": {"total": 10}},
        "steps": {"weights": [10, 20, 50], "minDwell": "60s"},
        "analysis": {
            "interval": "10s",
            "warmup": "20s",
            "maxDuration": "1h",
            "minBlocks": 6,
            "prometheus": {"address": "http://127.0.0.1:9", "lag": "0s"},
        },
        "promotion": {"mode": "auto"},
    }
    for key, value in overrides.items():
        base[key] = value if not isinstance(value, dict) else {**base.get(key, {}), **value}
    return base


class World:
    """The API, a clock, the source, and the operator's dependencies (recreated to simulate restarts)."""

    def __init__(self, source: ModelSource, canary_spec: dict[str, Any] | None = None) -> None:
        self.kube = FakeKube()
        self.kube.add(BASE + "py", deployment("py", 10))
        self.kube.add(BASE + "rs", deployment("rs", 0))
        self.kube.add(
            PATH,
            {
                "apiVersion": canaries.API_VERSION,
                "kind": canaries.KIND,
                "metadata": {"name": NAME, "namespace": NS, "uid": "u1"},
                "spec": canary_spec or spec(),
            },
        )
        self.now = T0
        self.source = source
        self.deps = self.fresh_deps()

    def fresh_deps(self) -> reconcile.Deps:
        return reconcile.Deps(api=self.kube, sources=lambda ns, sp: self.source, clock=lambda: self.now)

    @property
    def obj(self) -> dict[str, Any]:
        return copy.deepcopy(self.kube.objects[PATH])

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.obj.get("status") or {})

    def replicas(self) -> tuple[int, int]:
        return (
            self.kube.objects[BASE + "py"]["spec"]["replicas"],
            self.kube.objects[BASE + "rs"]["spec"]["replicas"],
        )

    def tick(self, seconds: float = 5.0) -> reconcile.TickResult:
        result = reconcile.tick(self.obj, self.deps)
        self.now += timedelta(seconds=seconds)
        return result

    def run(self, until: Callable[[dict[str, Any]], bool], max_seconds: float = 3600) -> dict[str, Any]:
        deadline = self.now + timedelta(seconds=max_seconds)
        while self.now < deadline:
            self.tick()
            if until(self.status):
                return self.status
        raise AssertionError(f"not reached by {max_seconds}s; status: {self.status}")

    def annotate(self, action: str) -> None:
        self.kube.objects[PATH]["metadata"].setdefault("annotations", {})[canaries.ACTION_ANNOTATION] = action
        self.kube._store(PATH, self.kube.objects[PATH], "user")

    def reasons(self) -> list[str]:
        return [e["reason"] for e in self.kube.events]
