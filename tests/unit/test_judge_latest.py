"""The controller's look (``verdict.evaluate``, which computes only the latest look) says exactly what
the full table of every look says at that look, so evaluating one look instead of all of them
changes no verdict and no decision look; and its cost per look no longer grows with the square of
the canary's age.

Fixed seeds; each case replays one canary look by look (every prefix of its blocks), as the
controller would have judged it, and compares the whole Judgement (decision, reason, every KPI's
estimate, interval and ETA) for equality, bit for bit.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from ferrocanary.bench import recordings, sim
from ferrocanary.judge import blocks, looks, quantiles, ratios, verdict
from ferrocanary.model import recording
from ferrocanary.model.analysis import AnalysisSettings
from ferrocanary.model.decisions import Decision

SETTINGS = AnalysisSettings()
FINE = np.asarray(0.002 * 1.1 ** np.arange(75), dtype=np.float64)
DATA = Path(__file__).parent.parent / "data" / "recordings"
TERMINAL = {Decision.PROMOTE, Decision.ROLLBACK, Decision.INVALID, Decision.INCONCLUSIVE}


def _replayed_look_by_look(rec: recording.Recording, settings: AnalysisSettings) -> int | None:
    """Judge every prefix with ``evaluate`` and compare it with the full table's row; return the first
    terminal look (the decision look the controller would have acted on)."""
    data = blocks.from_recording(rec)
    table = looks.compute(data, settings)  # every look, the quadratic way
    decided = None
    for n in range(1, data.n_blocks + 1):
        latest = verdict.evaluate(dataclasses.replace(rec, blocks=rec.blocks[:n]), settings)
        assert latest == verdict.judgement_at(data, table, settings, n - 1), f"look {n - 1} differs"
        if decided is None and latest.decision in TERMINAL:
            decided = n - 1
    assert decided == table.first_terminal()
    return decided


@pytest.mark.parametrize(
    ("scenario", "seed", "ending"),
    [
        (sim.Scenario(0.40, 100.0, minutes=60), 1, Decision.PROMOTE),
        (sim.Scenario(1.6, 100.0, minutes=60), 2, Decision.ROLLBACK),
        (sim.Scenario(0.90, 20.0, minutes=90, arm_phi=0.8), 7, None),  # near the boundary: stays open long
        (sim.Scenario(0.60, 20.0, minutes=90, **sim.STRESSORS["error-bursts"]), 3, None),
    ],
)
def test_the_latest_look_alone_gives_every_look_of_the_full_table(
    scenario: sim.Scenario, seed: int, ending: Decision | None
) -> None:
    batch = sim.simulate(scenario, 1, np.random.default_rng(seed), FINE)
    rec = recordings.from_batch(batch, 0, missing={12: ("cpu",), 20: ("latency",)})
    decided = _replayed_look_by_look(rec, SETTINGS)
    if ending is not None:
        assert decided is not None
        at_decision = dataclasses.replace(rec, blocks=rec.blocks[: decided + 1])
        assert verdict.evaluate(at_decision, SETTINGS).decision is ending


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.json")))
def test_the_shipped_recordings_replay_the_same_look_by_look(name: str) -> None:
    rec = recording.load(DATA / name)
    _replayed_look_by_look(rec, SETTINGS)


def test_the_statistics_before_the_first_computed_prefix_never_make_a_claim() -> None:
    rng = np.random.default_rng(5)
    counts = rng.poisson(50.0, size=(30, 20)).astype(np.float64)
    edges = quantiles.Edges.from_bounds(0.01 * 1.2 ** np.arange(19))
    arm = quantiles.Pooled.of(counts)
    full = quantiles.ratio_track(arm, quantiles.Pooled.of(counts[::-1].copy()), 0.9, edges)
    part = quantiles.ratio_track(arm, quantiles.Pooled.of(counts[::-1].copy()), 0.9, edges, first=20)
    assert np.array_equal(part.variance[20:], full.variance[20:])
    assert np.all(np.isinf(part.var_block[:20]))
    x = rng.gamma(5.0, 1.0, size=(30, 4))
    whole, tail = ratios.track(*x.T), ratios.track(*x.T, first=29)
    assert np.array_equal(tail.variance[28:], whole.variance[28:])
    assert np.all(np.isinf(tail.variance[:28]))
