"""Scale on the real sandbox: a slice of ``ferrocanary bench scale``, and shards that never overlap.

The slice runs the benchmark itself (kwok pods, the synthetic exporter scraped by the real
Prometheus, the real operator process) with a handful of canaries and 10 s blocks, and checks what
a user of the benchmark reads: every canary ends as its data call for, blocks are judged promptly,
and the operator's apiserver traffic stays small. The sharding test runs two operator processes with
disjoint ``--shard-selector``s and checks from their own /metrics that each handled only its shard.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferrocanary.bench import servers
from ferrocanary.kube import canaries, client, rest
from ferrocanary.local import processes, scale
from ferrocanary.local.sandbox import Sandbox
from tests.support.canary import fresh_namespaces, install_crd
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

FIGURES = (
    "canaries",
    "operator_cpu_cores_mean",
    "operator_cpu_cores_p99",
    "operator_rss_mb_max",
    "api_requests_per_second",
    "prometheus_queries_per_second",
    "prometheus_bytes_per_second",
    "judgement_lag_p99_seconds",
    "decisions_correct",
    "per_canary",
)


def test_a_slice_of_the_scale_bench_decides_every_canary_and_judges_blocks_promptly(sandbox: Sandbox) -> None:
    # Until every canary has ended (about 2.7 minutes with 10 s blocks), at most 5.
    options = scale.Options(canaries=4, minutes=5, interval_seconds=10, rps=1000.0, until_done=True)
    figures = scale.run(options, sandbox=sandbox)
    assert set(FIGURES) <= set(figures)
    assert figures["decisions_correct"] == 1.0, figures  # two promoted, two rolled back
    assert figures["blocks_judged"] >= 4 * 6
    assert figures["judgement_lag_p99_seconds"] < 30, figures
    # Four canaries at 10 s blocks: a status write per look and an Event per transition, no GET per tick.
    assert figures["api_requests_per_second"] < 2.0, figures
    # The operator's own count, by call: status merge patches, and never a GET of a canary per look.
    calls = figures["api_requests_per_second_by_call"]
    assert calls.get("patch rustcanaries/status 200", 0) > 0, calls
    assert calls.get("get rustcanaries 200", 0) < 0.1, calls
    assert figures["apiserver_requests_per_second"] >= figures["apiserver_canary_requests_per_second"] > 0
    assert figures["operator_rss_mb_max"] < 500


@pytest.fixture
def shard_namespace(sandbox: Sandbox) -> Iterator[str]:
    name = f"shard-{os.getpid()}-{int(time.time())}"
    with fresh_namespaces(sandbox, name):
        yield name


def _operator(sandbox: Sandbox, selector: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KUBECONFIG": str(sandbox.kubeconfig)}
    argv = [str(Path(sys.executable).parent / "ferrocanary"), "run", "-A", f"--shard-selector={selector}"]
    argv += [f"--metrics-port={port}", "--metrics-address=127.0.0.1"]
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


def _handled(port: int, namespace: str) -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        line.split('name="', 1)[1].split('"', 1)[0]
        for line in text.splitlines()
        if line.startswith("ferrocanary_canary_phase{") and f'namespace="{namespace}"' in line
    }


def test_two_operators_with_disjoint_shards_never_handle_the_same_canary(
    sandbox: Sandbox, shard_namespace: str, tmp_path: Path
) -> None:
    install_crd(sandbox)
    api = rest.Rest(client.api_client(str(sandbox.kubeconfig)))
    shards = {"a-one": "a", "a-two": "a", "b-one": "b", "b-two": "b", "nobody": ""}
    for name, shard in shards.items():
        body = scale.spec_object(sandbox, shard_namespace, name, 10)
        if shard:
            body["metadata"]["labels"] = {"ferrocanary.io/shard": shard}
        api.post(canaries.path(shard_namespace), body)
    ports = {"a": processes.free_port(), "b": processes.free_port()}
    started = [
        _operator(sandbox, f"ferrocanary.io/shard={shard}", port, tmp_path / f"operator-{shard}.log")
        for shard, port in ports.items()
    ]
    try:

        def phases() -> dict[str, str]:
            return {
                str(o["metadata"]["name"]): str((o.get("status") or {}).get("phase", ""))
                for o in canaries.list_objects(api, shard_namespace)
            }

        wait_for(
            phases,
            90,
            "every labelled canary started",
            until=lambda now: all(now[n] == "Progressing" for n, s in shards.items() if s),
        )
        time.sleep(5)  # a few more ticks, in which an overlapping operator would show itself
        assert phases()["nobody"] == ""  # in no shard: untouched
        assert _handled(ports["a"], shard_namespace) == {"a-one", "a-two"}
        assert _handled(ports["b"], shard_namespace) == {"b-one", "b-two"}
        events = json.loads(sandbox.kubectl("get", "events", "-n", shard_namespace, "-o", "json"))
        started_events = [e for e in events["items"] if e.get("reason") == "Started"]
        assert sorted(e["involvedObject"]["name"] for e in started_events) == [
            "a-one",
            "a-two",
            "b-one",
            "b-two",
        ]
    finally:
        for proc in started:
            servers.stop_process(proc)
