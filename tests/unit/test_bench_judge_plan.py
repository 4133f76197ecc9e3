"""The judge bench's plan and bookkeeping, fast enough for the unit suite: which cells the criteria
read, how many runs each --quick cell gets, and that judging a prefix first (a probe) changes the
bench's cost and never a decision."""

from __future__ import annotations

import numpy as np

from ferrocanary.bench import judge, sim
from ferrocanary.model.analysis import AnalysisSettings


def test_probes_change_the_cost_not_the_decisions() -> None:
    """Judging a 30-look prefix first, then the rest from look 30 on, gives what one full table gives:
    looks are causal (three boundary canaries that run on, three clear wins)."""
    settings = AnalysisSettings()
    for truth, rps in ((0.60, 20.0), (0.40, 100.0)):
        batch = sim.simulate(sim.scenario(truth, rps, "exp1.1"), 3, np.random.default_rng(4))
        for run in range(batch.runs):
            data = batch.block_data(run)
            assert judge.decisions(data, settings, probes=(30,)) == judge.decisions(data, settings, probes=())


def test_criteria_read_20_and_100_rps_only() -> None:
    """Issue 13's done-when names 20 and 100 rps; a 5 rps row is shown in the table but is no criterion."""
    row = {"method": "ferrocanary", "buckets": "exp1.1", "stressor": "none", "kpi": "p99-latency",
           "runs": 400, "promote": 0.5, "rollback": 0.5, "median_minutes": 40.0}  # fmt: skip
    truths, rates = (0.40, 0.60, 0.70, 1.2), (5.0, 20.0, 100.0)
    rows = [{**row, "true_ratio": t, "rps": rps} for t in truths for rps in rates]
    names = [c["name"] for c in judge.criteria(rows)]
    assert not any("rps 5)" in n for n in names)
    assert any("rps 20)" in n for n in names)
    assert any("rps 100)" in n for n in names)


def test_quick_plan_gives_the_criteria_cells_their_runs() -> None:
    """--quick: 400 runs where a criterion reads an exp1.1 cell, 100 where none does (still shown),
    50 on coarse buckets, 200 per stressor cell."""
    runs = {(c.true_ratio, c.rps, c.buckets, c.stressor, c.kpi): c.runs for c in judge.plan(quick=True)}
    assert runs[(0.60, 20.0, "exp1.1", "none", "p99-latency")] == 400
    assert runs[(0.40, 100.0, "exp1.1", "none", "p99-latency")] == 400
    assert runs[(0.60, 5.0, "exp1.1", "none", "p99-latency")] == 100
    assert runs[(0.55, 20.0, "exp1.1", "none", "p99-latency")] == 100
    assert runs[(0.60, 20.0, "default", "none", "p99-latency")] == 50
    assert runs[(0.60, 20.0, "exp1.1", "common-drift", "p99-latency")] == 200
    assert sum(runs.values()) == 8 * 400 + 10 * 100 + 36 * 50 + 38 * 200
