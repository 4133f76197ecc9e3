"""Several operator replicas: each gets its own peering priority, the oldest acts, failover is bounded.

kopf pauses every replica that sees a live peer of higher priority, and all of them when the
highest priority is shared; these tests pin the priorities ``ferrocanary run --peering`` picks.
"""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from ferrocanary import handlers
from ferrocanary.handlers import peers, startup


def test_an_older_replica_outranks_a_newer_one_whatever_their_names() -> None:
    for older, newer in (("op-a", "op-b"), ("op-b", "op-a"), ("zz", "aa")):
        assert peers.auto_priority(1_800_000_000, older) > peers.auto_priority(1_800_000_001, newer)


def test_replicas_started_in_the_same_second_get_different_priorities() -> None:
    names = [f"ferrocanary-7d9f5c6b8-{i:05d}" for i in range(200)]
    priorities = {peers.auto_priority(1_800_000_000, n) for n in names}
    assert len(priorities) == len(names)  # a million buckets: 200 names collide with odds ~2%


def test_priorities_survive_json_numbers() -> None:
    late = peers.auto_priority(4_102_444_800, "x")  # the year 2100
    assert abs(late) < 2**53
    assert float(late) == late


def test_the_pod_name_is_the_identity_when_the_chart_sets_it() -> None:
    assert peers.identity({"POD_NAME": "ferrocanary-abc"}) == "ferrocanary-abc"
    assert "@" in peers.identity({})


def test_the_peering_lifetime_defaults_and_refuses_what_would_flap() -> None:
    assert peers.lifetime({}) == peers.DEFAULT_LIFETIME == 15
    assert peers.lifetime({"FERROCANARY_PEERING_LIFETIME": "30"}) == 30
    with pytest.raises(ValueError, match="FERROCANARY_PEERING_LIFETIME: 5 is below 12"):
        peers.lifetime({"FERROCANARY_PEERING_LIFETIME": "5"})
    with pytest.raises(ValueError, match="not a whole number"):
        peers.lifetime({"FERROCANARY_PEERING_LIFETIME": "15s"})


def test_run_with_peering_and_no_priority_gives_each_process_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(handlers.kopf, "configure", lambda **_: None)
    monkeypatch.setattr(handlers.kopf, "run", lambda **kw: seen.append(kw))
    monkeypatch.setattr(peers.time, "time", lambda: 1_800_000_000.0)
    monkeypatch.setenv("POD_ID", "kopf-reads-this")  # run() fills it in when unset; restored afterwards
    monkeypatch.setenv("POD_NAME", "ferrocanary-0")
    handlers.run(peering="ferrocanary")
    monkeypatch.setenv("POD_NAME", "ferrocanary-1")
    handlers.run(peering="ferrocanary")
    handlers.run(peering="ferrocanary", priority=7)
    handlers.run()
    first, second, fixed, standalone = seen
    assert first["priority"] != second["priority"]
    assert first["standalone"] is second["standalone"] is False
    assert fixed["priority"] == 7
    assert standalone["priority"] is None
    assert standalone["standalone"] is True


def test_startup_sets_the_peering_lifetime_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERROCANARY_PEERING_LIFETIME", "20")
    monkeypatch.setattr(startup.client, "connect", object)
    monkeypatch.delenv("FERROCANARY_METRICS_PORT", raising=False)
    settings = kopf.OperatorSettings()
    startup.configure(settings=settings, memo={}, logger=startup.logging.getLogger("test"))
    assert settings.peering.lifetime == 20
