"""Each build's figures as the judge read them: status.arms, the ferrocanary_arm_* series, the dashboard.

The block is written by hand (60 s, known counts), so every figure is checked against arithmetic.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ferrocanary.metrics import exposition, queries
from ferrocanary.model import analysis, recording
from ferrocanary.policy import figures

ROOT = Path(__file__).resolve().parents[2]
BOUNDS = (0.01, 0.02, 0.04)
GIB = 1024.0**3


def _rec(missing: tuple[str, ...] = ()) -> recording.Recording:
    # baseline: 600 requests, 6 errors, all between 20 and 40 ms; 30 CPU-seconds; 2 GiB
    baseline = recording.ArmBlock(600, 6, (0, 0, 600, 0), 30.0, 2 * GIB, 2, 0)
    # candidate: 600 requests, none failed, all between 10 and 20 ms; 6 CPU-seconds; 0.5 GiB
    candidate = recording.ArmBlock(600, 0, (0, 600, 0, 0), 6.0, 0.5 * GIB, 2, 0)
    block = recording.Block(datetime(2026, 1, 1, tzinfo=UTC), 50.0, baseline, candidate, missing)
    return recording.Recording(60.0, BOUNDS, (block,))


def test_each_builds_figures_are_read_off_the_newest_block() -> None:
    settings = analysis.AnalysisSettings(interval_seconds=60.0)
    arms = figures.arm_figures(_rec(), settings)
    base, cand = arms["baseline"], arms["candidate"]
    assert base["requestsPerSecond"] == pytest.approx(10.0)
    assert base["errorRatio"] == pytest.approx(0.01)
    assert cand["errorRatio"] == 0.0
    assert base["cpuCores"] == pytest.approx(0.5)
    assert cand["cpuCores"] == pytest.approx(0.1)
    assert base["memoryBytes"] == pytest.approx(2 * GIB)
    # histogram_quantile's interpolation inside the bucket: p50 of 20-40 ms is 30 ms
    assert base["p50Seconds"] == pytest.approx(0.03)
    assert cand["p99Seconds"] == pytest.approx(0.0199)
    price = analysis.Pricing()
    cost = 30.0 * price.cpu_hour / 3600 + 2 * 60 * price.memory_gib_hour / 3600
    assert base["costPerRequest"] == pytest.approx(cost / 600)
    # priced by OpenCost: each build at its own nodes' prices
    opencost = {
        "baseline": {"cpuHour": 0.1, "memoryGiBHour": 0.0},
        "candidate": {"cpuHour": 0.05, "memoryGiBHour": 0.0},
    }
    priced = figures.arm_figures(_rec(), analysis.with_prices(settings, opencost))
    assert priced["candidate"]["costPerRequest"] == pytest.approx(6.0 * 0.05 / 3600 / 600)


def test_a_signal_the_block_lacks_is_left_out_not_shown_as_zero() -> None:
    arms = figures.arm_figures(_rec(missing=("latency", "memory")), analysis.AnalysisSettings())
    assert "p99Seconds" not in arms["candidate"]
    assert "memoryBytes" not in arms["candidate"]
    assert "costPerRequest" not in arms["candidate"]  # needs the memory
    assert arms["candidate"]["requestsPerSecond"] == pytest.approx(10.0)
    assert figures.arm_figures(recording.Recording(60.0, BOUNDS, ()), analysis.AnalysisSettings()) == {}


def _sample(metric: str, **labels: str) -> float | None:
    return exposition.REGISTRY.get_sample_value(metric, labels)


def test_the_operator_exports_the_figures_and_removes_what_is_gone() -> None:
    arms = figures.arm_figures(_rec(), analysis.AnalysisSettings())
    exposition.publish("shop", "scorer", {"arms": arms}, ())
    labels = {"namespace": "shop", "name": "scorer", "arm": "candidate"}
    assert _sample("ferrocanary_arm_cpu_cores", **labels) == pytest.approx(0.1)
    assert _sample(queries.ARM_LATENCY, **labels, quantile="0.99") == pytest.approx(0.0199)
    # the next block lacks latency: the latency series goes, the others stay
    fewer = figures.arm_figures(_rec(missing=("latency",)), analysis.AnalysisSettings())
    exposition.publish("shop", "scorer", {"arms": fewer}, ())
    assert _sample(queries.ARM_LATENCY, **labels, quantile="0.99") is None
    assert _sample("ferrocanary_arm_requests_per_second", **labels) == pytest.approx(10.0)
    exposition.forget("shop", "scorer", ())
    assert _sample("ferrocanary_arm_requests_per_second", **labels) is None


def test_the_verdicts_dashboard_shows_each_build_as_judged_whatever_the_preset() -> None:
    board = json.loads((ROOT / "dashboards" / "canary-verdicts.json").read_text())
    exprs = {p["title"]: [t["expr"] for t in p.get("targets", [])] for p in board["panels"]}
    assert any(p.get("title") == "Each build as the judge read it (any preset)" for p in board["panels"])
    for metric, _help in queries.ARM_FIGURES.values():
        assert any(metric in e for panel in exprs.values() for e in panel), metric
    assert all('arm=~"baseline|candidate"' in e for e in exprs["Latency as judged"])
