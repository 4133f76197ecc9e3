"""The kopf layer stays thin and wired right: what is registered, how it starts, what a tick reads.

Handlers are called directly here with an in-memory API (``FakeKube``, a fake of the ``JsonApi``
Protocol); the real operator runs under ``kopf.testing.KopfRunner`` in tests/integration.
"""

from __future__ import annotations

import copy
import logging
import threading
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml

from ferrocanary import handlers, reconcile
from ferrocanary.cli import main as cli_main
from ferrocanary.handlers import canary, startup
from ferrocanary.kube import canaries
from tests.fakes.metrics import ModelSource
from tests.fakes.world import NAME, NS, PATH, T0, World
from tests.support import arms

LOG = logging.getLogger("test")


def test_no_timer_an_owning_daemon_a_watch_handler_and_a_delete_handler_are_registered() -> None:
    registry = kopf.get_default_registry()
    spawning = registry._spawning.get_all_handlers()
    assert [h.id for h in spawning] == ["tick"]  # the daemon that says this replica owns the canary
    assert not hasattr(spawning[0], "interval")  # looks come from the scheduler, not a timer
    assert spawning[0].requires_finalizer  # so the release on deletion runs before the object goes
    assert spawning[0].selector.any_name == canaries.PLURAL
    assert spawning[0].selector.group == canaries.GROUP
    assert [h.id for h in registry._watching.get_all_handlers()] == ["seen"]
    assert [h.id for h in registry._changing.get_all_handlers()] == ["release"]
    # every canary of the watched namespaces, whatever its shard, for the start rule (no LIST)
    indexing = registry._indexing.get_all_handlers()
    assert [h.id for h in indexing] == ["claimants"]
    assert indexing[0].selector.any_name == canaries.PLURAL
    assert not indexing[0].labels
    ours = [h.id for h in registry._activities.get_all_handlers() if not h._fallback]
    assert ours == ["login", "configure", "stop_looks"]  # our login replaces kopf's fallback ones


def test_the_timer_reads_the_object_fresh_and_runs_one_tick() -> None:
    world = World(ModelSource(arms.PYTHON, arms.RUST_WIN))
    memo = kopf.Memo(deps=world.deps)
    canary.tick(name=NAME, namespace=NS, memo=memo, logger=LOG)
    assert world.status["phase"] == "Progressing"
    assert world.reasons() == ["Started"]
    # kopf's cached body may be stale; the handler never looks at it, only at the API.
    canary.tick(name=NAME, namespace=NS, memo=memo, logger=LOG)
    assert world.reasons() == ["Started"]


def test_a_canary_being_deleted_is_left_to_the_delete_handler() -> None:
    world = World(ModelSource(arms.PYTHON, arms.RUST_WIN))
    world.kube.objects[PATH]["metadata"]["deletionTimestamp"] = T0.isoformat()
    canary.tick(name=NAME, namespace=NS, memo=kopf.Memo(deps=world.deps), logger=LOG)
    assert "status" not in world.kube.objects[PATH]
    body = copy.deepcopy(world.kube.objects[PATH])
    canary.release(body=body, memo=kopf.Memo(deps=world.deps), logger=LOG)  # Pending: nothing to restore
    assert world.replicas() == (10, 0)


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True},
                    }
                ],
                "users": [{"name": "u", "user": {"token": "secret-token"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("FERROCANARY_METRICS_PORT", raising=False)
    return path


def test_startup_sets_our_finalizer_and_prefix_and_builds_the_dependencies(kubeconfig: Path) -> None:
    settings = kopf.OperatorSettings()
    memo = kopf.Memo()
    startup.configure(settings=settings, memo=memo, logger=LOG, claimants={NS: []})
    startup.stop_looks(memo=memo)
    assert isinstance(memo["looks"], canary.Looks)
    assert memo["deps"].claimants is not None
    assert memo["deps"].claimants(NS) == []
    assert settings.persistence.finalizer == "ferrocanary.io/finalizer"
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert settings.posting.level == logging.WARNING
    assert isinstance(memo["deps"], reconcile.Deps)


def test_kopf_logs_in_with_the_kubeconfig_named_at_run_time(kubeconfig: Path) -> None:
    info = startup.login()
    assert info.server == "https://127.0.0.1:6443"
    assert info.token == "secret-token"
    assert info.insecure is True
    assert "secret-token" not in repr(startup.client.credentials())


def test_ferrocanary_run_hands_its_options_to_the_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run(**kwargs: Any) -> int:
        seen.update(kwargs)
        return 0

    monkeypatch.setattr(handlers, "run", fake_run)
    assert cli_main.main(["run", "-n", "shop", "-n", "web", "--metrics-port", "9102"]) == 0
    assert seen["namespaces"] == ("shop", "web")
    assert seen["metrics_port"] == 9102
    assert seen["peering"] is None
    seen.clear()
    assert cli_main.main(["run", "--all-namespaces", "--peering", "ferrocanary"]) == 0
    assert seen["namespaces"] == ()
    assert seen["peering"] == "ferrocanary"
    with pytest.raises(SystemExit):
        cli_main.main(["run", "-n", "shop", "--all-namespaces"])


def test_the_per_tick_success_line_is_dropped_and_everything_else_kept() -> None:
    quiet = startup.QuietTicks()

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("kopf.objects", logging.INFO, __file__, 1, message, None, None)

    assert not quiet.filter(record("Timer 'tick' succeeded."))
    assert quiet.filter(record("StepAdvanced: advanced to step 2/3"))
    assert quiet.filter(record("Timer 'tick' failed with an exception. Will retry."))


def test_a_release_waits_for_the_tick_in_flight_and_later_ticks_see_the_deletion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World(ModelSource(arms.PYTHON, arms.RUST_WIN))
    world.run(lambda s: s.get("stepIndex") == 0)
    memo = kopf.Memo(deps=world.deps)
    entered, go_on, order = threading.Event(), threading.Event(), []
    real_tick, real_release = reconcile.tick, reconcile.release

    def slow_tick(obj: Any, deps: reconcile.Deps) -> reconcile.TickResult:
        entered.set()
        go_on.wait(5)
        order.append("tick")
        return real_tick(obj, deps)

    def release(obj: Any, deps: reconcile.Deps) -> reconcile.Released:
        order.append("release")
        return real_release(obj, deps)

    monkeypatch.setattr(reconcile, "tick", slow_tick)
    monkeypatch.setattr(reconcile, "release", release)
    uid = world.obj["metadata"]["uid"]
    ticking = threading.Thread(
        target=lambda: canary.tick(name=NAME, namespace=NS, uid=uid, memo=memo, logger=LOG)
    )
    ticking.start()
    assert entered.wait(5)
    body = world.obj
    releasing = threading.Thread(target=lambda: canary.release(body=body, memo=memo, logger=LOG))
    releasing.start()
    releasing.join(0.3)
    assert releasing.is_alive()  # held back while the tick is in flight
    go_on.set()
    ticking.join(5)
    releasing.join(5)
    assert order == ["tick", "release"]
    assert world.replicas() == (10, 0)  # the release had the last word
    world.kube.objects[PATH]["metadata"]["deletionTimestamp"] = "2025-03-01T09:10:00Z"
    entered.clear()
    canary.tick(name=NAME, namespace=NS, uid=uid, memo=memo, logger=LOG)
    assert not entered.is_set()  # a tick after the release sees the deletion and does nothing


def test_the_timer_works_from_the_watched_body_or_its_own_newer_write_not_a_get_per_tick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World(ModelSource(arms.PYTHON, arms.RUST_WIN))
    memo = kopf.Memo(deps=world.deps)
    stale = copy.deepcopy(world.kube.objects[PATH])  # as the watch delivered it before our write
    read: list[str] = []
    real_get = world.kube.get
    monkeypatch.setattr(world.kube, "get", lambda path: read.append(path) or real_get(path))
    canary.tick(name=NAME, namespace=NS, memo=memo, logger=LOG, body=stale)
    assert world.status["phase"] == "Progressing"
    # The watch has not caught up: our own write is newer, so the start is not repeated.
    canary.tick(name=NAME, namespace=NS, memo=memo, logger=LOG, body=stale)
    assert world.reasons() == ["Started"]
    assert PATH not in read  # the canary itself was never read back


def test_kept_objects_leave_out_managed_fields_which_were_half_their_size() -> None:
    """The watched body and our own last write are kept per canary without ``managedFields``; what a
    tick reads from them (its spec, status and resourceVersion) is unchanged."""
    world = World(ModelSource(arms.PYTHON, arms.RUST_WIN))
    memo = kopf.Memo(deps=world.deps)
    looks = canary.Looks(memo, workers=1)
    body = copy.deepcopy(world.kube.objects[PATH])
    body["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
    looks.seen((NS, NAME), body)
    kept = looks._bodies[(NS, NAME)]
    assert "managedFields" not in kept["metadata"]
    assert kept["spec"] == body["spec"]
    assert kept["metadata"]["resourceVersion"] == body["metadata"]["resourceVersion"]
    assert "managedFields" in body["metadata"]  # the watch's own object is not changed
    newer = str(int(body["metadata"]["resourceVersion"]) + 1)
    meta = dict(body["metadata"], resourceVersion=newer)
    written = dict(body, metadata=meta, status={"phase": "Progressing"})
    result = reconcile.TickResult(wrote=True, written=written)
    canary._written(memo).record((NS, NAME), result)
    newest = canary._written(memo).newest((NS, NAME), kept)
    assert newest is not None
    assert newest["metadata"]["resourceVersion"] == newer  # our write, the newer one
    assert "managedFields" not in newest["metadata"]


def test_a_finished_canary_has_no_timer_until_an_action_or_a_new_spec_arrives() -> None:
    done = {"phase": "Promoted", "observedGeneration": 3}
    assert not canary._live(status=done, meta={"generation": 3}, annotations={})
    assert canary._live(status=done, meta={"generation": 4}, annotations={})
    assert canary._live(
        status=done, meta={"generation": 3}, annotations={canaries.ACTION_ANNOTATION: "abort"}
    )
    assert canary._live(status={"phase": "Progressing"}, meta={"generation": 3}, annotations={})


def test_a_shard_selector_becomes_kopfs_label_filter() -> None:
    assert canary.shard_labels("") == {}
    assert canary.shard_labels("ferrocanary.io/shard=a, team") == {
        "ferrocanary.io/shard": "a",
        "team": kopf.PRESENT,
    }
