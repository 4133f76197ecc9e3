"""Custom KPIs reach Promote or Rollback from their own counters, with the judge's own statistics.

The built-in KPIs come from a simulated clear win (bench/sim.py, seed 1); each custom KPI's counters
are drawn per block (Poisson, fixed seeds) at the traffic split of that block. One run per case:
the margins are wide (0.5x and 1.5x against a 0.8x target, 2.4x for the histogram).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ferrocanary.bench import recordings, sim
from ferrocanary.judge import verdict
from ferrocanary.metrics import protocol
from ferrocanary.model import recording
from ferrocanary.model import spec as canary_spec
from ferrocanary.model.decisions import Decision, Judgement, Reading
from ferrocanary.policy import custom_kpis
from ferrocanary.report import source

FINE = np.asarray(0.002 * 1.1 ** np.arange(75), dtype=np.float64)
ARMS = {"baseline": {"deployment": "py"}, "candidate": {"deployment": "rs"}}
DB_CALLS = {
    "name": "db-calls-per-request",
    "type": "ratio",
    "numerator": 'db_queries_total{namespace="{{namespace}}",pod=~"{{pods}}"}',
    "denominator": "http_requests_total{{{selector}}}",
    "target": 0.8,
}


def _main() -> recording.Recording:
    batch = sim.simulate(sim.Scenario(0.40, 100.0), 1, np.random.default_rng(1), FINE)
    return recordings.from_batch(batch, 0)


def _ratio(main: recording.Recording, per_request: dict[str, float], seed: int) -> recording.Recording:
    """Numerator ~ Poisson(requests x per_request) per arm and block, requests as in the main blocks."""
    rng = np.random.default_rng(seed)
    out = []
    for block in main.blocks:
        arms: dict[str, recording.ArmBlock] = {}
        for arm in ("baseline", "candidate"):
            requests = getattr(block, arm).requests
            calls = float(rng.poisson(requests * per_request[arm]))
            arms[arm] = recording.ArmBlock(
                requests, 0.0, (0.0, 0.0), calls, 0.0, getattr(block, arm).pods, 0.0
            )
        out.append(recording.Block(block.start, block.weight, arms["baseline"], arms["candidate"]))
    return recording.Recording(main.interval_seconds, (1.0,), tuple(out))  # one empty bucket, as the source


def _quantile(main: recording.Recording, scale: dict[str, float], seed: int) -> recording.Recording:
    """A histogram of the team's own (lognormal render times, median 20 ms x scale) on fine buckets."""
    rng = np.random.default_rng(seed)
    edges = np.append(FINE, math.inf)
    out = []
    for block in main.blocks:
        arms: dict[str, recording.ArmBlock] = {}
        for arm in ("baseline", "candidate"):
            own = getattr(block, arm)
            times = rng.lognormal(math.log(0.02 * scale[arm]), 0.4, int(own.requests))
            counts = np.histogram(times, bins=np.concatenate(([0.0], edges)))[0]
            arms[arm] = dataclasses.replace(own, latency_counts=tuple(float(c) for c in counts))
        out.append(recording.Block(block.start, block.weight, arms["baseline"], arms["candidate"]))
    return recording.Recording(main.interval_seconds, tuple(float(b) for b in FINE), tuple(out))


def _judge(kpi: dict[str, Any], own: recording.Recording, main: recording.Recording) -> Judgement:
    spec = canary_spec.parse({**ARMS, "analysis": {"metrics": {"kpis": [kpi]}}})
    return custom_kpis.evaluate(verdict.evaluate, dataclasses.replace(main, custom={kpi["name"]: own}), spec)


def _kpi(judgement: Judgement, name: str) -> Any:
    return next(k for k in judgement.kpis if k.name == name)


def test_half_the_database_calls_per_request_is_promoted_with_the_kpi_shown() -> None:
    main = _main()
    judgement = _judge(DB_CALLS, _ratio(main, {"baseline": 2.0, "candidate": 1.0}, seed=2), main)
    assert judgement.decision is Decision.PROMOTE, judgement.reason
    kpi = _kpi(judgement, "db-calls-per-request")
    assert kpi.decision is Reading.PASS
    assert kpi.lower < 0.5 < kpi.upper < 0.8
    assert {k.name for k in judgement.kpis} >= {"p99-latency", "throughput-per-cpu", "db-calls-per-request"}


def test_more_database_calls_per_request_rolls_back_naming_the_kpi() -> None:
    main = _main()
    judgement = _judge(DB_CALLS, _ratio(main, {"baseline": 2.0, "candidate": 3.0}, seed=3), main)
    assert judgement.decision is Decision.ROLLBACK
    assert "db-calls-per-request" in judgement.reason
    assert _kpi(judgement, "db-calls-per-request").decision is Reading.MISS


def test_higher_is_better_reads_the_other_way() -> None:
    main = _main()
    hits = {**DB_CALLS, "name": "cache-hits-per-request", "direction": "higher", "target": 1.2}
    judgement = _judge(hits, _ratio(main, {"baseline": 0.2, "candidate": 0.6}, seed=4), main)
    assert judgement.decision is Decision.PROMOTE, judgement.reason
    assert _kpi(judgement, "cache-hits-per-request").lower > 1.2


def test_a_quantile_of_a_custom_histogram_rolls_back_a_slower_candidate() -> None:
    main = _main()
    render = {
        "name": "p99-render",
        "type": "quantile",
        "histogram": 'render_seconds_bucket{namespace="{{namespace}}",pod=~"{{pods}}"}',
        "quantile": 0.99,
        "target": 0.9,
    }
    judgement = _judge(render, _quantile(main, {"baseline": 1.0, "candidate": 2.4}, seed=5), main)
    assert judgement.decision is Decision.ROLLBACK
    assert "p99-render" in judgement.reason


def test_a_custom_kpi_without_data_holds_a_winning_canary() -> None:
    main = _main()
    spec = canary_spec.parse({**ARMS, "analysis": {"metrics": {"kpis": [DB_CALLS]}}})
    judgement = custom_kpis.evaluate(verdict.evaluate, main, spec)
    assert judgement.decision is Decision.HOLD
    assert _kpi(judgement, "db-calls-per-request").decision is Reading.NO_DATA


@pytest.mark.parametrize(
    ("kpi", "message"),
    [
        ({**DB_CALLS, "target": 0}, r"kpis\[0\]\.target: must be a ratio > 0"),
        ({**DB_CALLS, "numerator": "db_queries_total"}, r"kpis\[0\]\.numerator: metric db_queries_total"),
        ({**DB_CALLS, "name": "p99-latency"}, r"kpis\[0\]\.name: p99-latency is already a KPI"),
        ({**DB_CALLS, "type": "mean"}, r"kpis\[0\]\.type: expected ratio or quantile"),
        ({**DB_CALLS, "histogram": "x"}, r"kpis\[0\]\.histogram: not a field of a ratio KPI"),
    ],
)
def test_a_bad_custom_kpi_is_refused_naming_the_field(kpi: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=r"spec\.analysis\.metrics\." + message):
        canary_spec.parse({**ARMS, "analysis": {"metrics": {"kpis": [kpi]}}})


def test_the_custom_queries_are_resolved_per_arm() -> None:
    spec = canary_spec.parse({**ARMS, "analysis": {"metrics": {"kpis": [DB_CALLS]}}})
    queries = protocol.custom_queries("shop", spec)["db-calls-per-request"].by_arm()
    assert (
        queries["candidate"]["numerator"]
        == 'db_queries_total{namespace="shop",pod=~"rs-[a-z0-9]+-[a-z0-9]+"}'
    )
    assert queries["baseline"]["denominator"].startswith(
        'http_requests_total{namespace="shop",track="baseline"'
    )


def test_the_report_lists_a_custom_kpi_like_the_built_in_ones(tmp_path: Path) -> None:
    main = _main()
    rec = dataclasses.replace(
        main, custom={DB_CALLS["name"]: _ratio(main, {"baseline": 2.0, "candidate": 1.0}, 3)}
    )
    obj = {
        "metadata": {"name": "scorer", "namespace": "shop"},
        "spec": {**ARMS, "analysis": {"metrics": {"kpis": [DB_CALLS]}}},
        "status": {"phase": "Promoted"},
    }
    report = source.render_report(obj, rec, tmp_path).read_text()
    row = next(line for line in report.splitlines() if line.startswith("| db-calls-per-request |"))
    assert "<= 0.8" in row
    assert "| Pass |" in row
