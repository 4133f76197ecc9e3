"""Pricing from OpenCost: each build priced by the nodes its pods run on, the static prices otherwise.

The judged recording is a simulated clear win (bench/sim.py, seed 1, one run): the cost KPI is linear
in the prices, so pricing the candidate's nodes twice as dear doubles its cost ratio exactly.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping

import numpy as np
import pytest

from ferrocanary.bench import recordings, sim
from ferrocanary.cli.queries import resolve
from ferrocanary.judge import verdict
from ferrocanary.metrics import opencost
from ferrocanary.model import analysis, recording
from ferrocanary.policy import report
from ferrocanary.report import render

FINE = np.asarray(0.002 * 1.1 ** np.arange(75), dtype=np.float64)
PODS = {
    "baseline": 'namespace="shop",pod=~"py-[a-z0-9]+-[a-z0-9]+"',
    "candidate": 'namespace="shop",pod=~"rs-x"',
}
PRICES = {
    "baseline": {"cpuHour": 0.048, "memoryGiBHour": 0.0064},
    "candidate": {"cpuHour": 0.0408, "memoryGiBHour": 0.0054},
}


def _answers(
    values: Mapping[str, Mapping[str, float | None]],
) -> Callable[[Mapping[str, str]], dict[str, float | None]]:
    """A fake Prometheus: each query answered by the price its series and arm have in ``values``."""

    def answer(asked: Mapping[str, str]) -> dict[str, float | None]:
        key = "cpuHour" if "node_cpu_hourly_cost" in next(iter(asked.values())) else "memoryGiBHour"
        return {arm: values[arm].get(key) for arm in asked}

    return answer


def test_each_build_is_priced_by_the_nodes_its_own_pods_run_on() -> None:
    queries = opencost.arm_queries(PODS)
    cpu = queries["cpu"]["candidate"]
    # the pods' node from kube-state-metrics, that node's price from OpenCost, averaged over the pods
    assert cpu == (
        'avg(kube_pod_info{namespace="shop",pod=~"rs-x"} * on (node) group_left () '
        "max by (node) (node_cpu_hourly_cost))"
    )
    assert "node_ram_hourly_cost" in queries["memory"]["baseline"]
    assert opencost.read(_answers(PRICES), PODS) == PRICES


@pytest.mark.parametrize("missing", ["cpuHour", "memoryGiBHour"])
def test_the_static_prices_stay_unless_opencost_prices_both_builds(missing: str) -> None:
    partial = {"baseline": PRICES["baseline"], "candidate": {**PRICES["candidate"], missing: None}}
    assert opencost.read(_answers(partial), PODS) == {}
    settings = analysis.AnalysisSettings()
    assert analysis.with_prices(settings, {}) is settings
    assert analysis.with_prices(settings, {}).pricing.source == "static"


def _clear_win() -> recording.Recording:
    batch = sim.simulate(sim.Scenario(0.40, 100.0), 1, np.random.default_rng(1), FINE)
    return recordings.from_batch(batch, 0)


def test_the_cost_kpi_prices_each_build_at_its_own_nodes_price() -> None:
    rec = _clear_win()
    same = {arm: dict(PRICES["baseline"]) for arm in ("baseline", "candidate")}
    dearer = {"baseline": same["baseline"], "candidate": {k: 2 * v for k, v in same["candidate"].items()}}
    settings = analysis.AnalysisSettings(interval_seconds=rec.interval_seconds)

    def cost(prices: Mapping[str, Mapping[str, float]]) -> tuple[float, float]:
        judged = verdict.evaluate(rec, analysis.with_prices(settings, prices))
        kpi = next(k for k in judged.kpis if k.name == "cost-per-request")
        assert kpi.estimate is not None
        assert judged.cost is not None
        return kpi.estimate, judged.cost.candidate_monthly

    (ratio, monthly), (ratio2, monthly2) = cost(same), cost(dearer)
    assert ratio2 == pytest.approx(2 * ratio, rel=1e-9)
    assert monthly2 == pytest.approx(2 * monthly, rel=1e-9)


def test_status_and_report_say_which_prices_were_used() -> None:
    static = analysis.AnalysisSettings()
    assert report.pricing_status(static.pricing) == {
        "source": "static",
        "baseline": {"cpuHour": 0.04048, "memoryGiBHour": 0.004445},
        "candidate": {"cpuHour": 0.04048, "memoryGiBHour": 0.004445},
    }
    priced = analysis.with_prices(static, PRICES).pricing
    assert report.pricing_status(priced) == {"source": "opencost", **PRICES}
    assert "OpenCost" in render.pricing_sentence(priced)
    assert "$0.0408 per vCPU-hour" in render.pricing_sentence(priced)
    assert "static prices (spec.analysis.pricing)" in render.pricing_sentence(static.pricing)


def test_a_recording_keeps_its_prices_and_refuses_bad_ones_naming_the_field() -> None:
    rec = dataclasses.replace(_clear_win(), prices=PRICES)
    again = recording.from_dict(json.loads(json.dumps(recording.to_dict(rec))))
    assert again.prices == PRICES
    assert "prices" not in recording.to_dict(_clear_win())  # no OpenCost: the file is as before
    bad = recording.to_dict(rec)
    bad["prices"]["candidate"]["cpuHour"] = -1
    with pytest.raises(recording.RecordingError, match=r"prices\.candidate\.cpuHour"):
        recording.from_dict(bad)


def test_ferrocanary_queries_shows_the_price_queries_and_the_static_fallback() -> None:
    canary = {
        "metadata": {"name": "scorer", "namespace": "shop"},
        "spec": {
            "baseline": {"deployment": "scorer-python"},
            "candidate": {"deployment": "scorer-rust"},
            "analysis": {"pricing": {"cpuHour": 0.03}},
        },
    }
    pricing = resolve(canary)["pricing"]
    assert pricing["static"] == {"cpuHour": 0.03, "memoryGiBHour": 0.004445}
    query = pricing["opencost"]["cpuHour"]["candidate"]
    assert 'kube_pod_info{namespace="shop",pod=~"scorer-rust-[a-z0-9]+-[a-z0-9]+"}' in query
    assert "node_cpu_hourly_cost" in query
