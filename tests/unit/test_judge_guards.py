"""Guards inside the promotion rule (issue 13): a promotion needs every guard rail shown non-inferior
(below maxRatio x (1 + nonInferiorityMargin)), not just the absence of evidence of harm; the margin
is a validated spec field; the status names the guard that holds a promotion back, with its ETA."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from ferrocanary.bench import judge, recordings, sim
from ferrocanary.judge import counts, replay
from ferrocanary.model import analysis
from ferrocanary.model.analysis import AnalysisSettings, GuardKind, GuardRail
from ferrocanary.model.decisions import Decision, Reading

FINE = np.asarray(0.002 * 1.1 ** np.arange(75), dtype=np.float64)


def _replay(scenario: sim.Scenario, settings: AnalysisSettings, seed: int = 1) -> tuple[object, int | None]:
    batch = sim.simulate(scenario, 1, np.random.default_rng(seed), FINE)
    return replay.replay(recordings.from_batch(batch, 0), settings)


def test_margins_default_per_kind_and_are_parsed_and_validated() -> None:
    settings = AnalysisSettings()
    assert [g.margin for g in settings.guards] == [1.0, 0.1]
    assert settings.guards[0].promote_below == pytest.approx(2.0)
    spec = {"guards": [{"name": "e", "type": "errorRate", "maxRatio": 1.2, "nonInferiorityMargin": 0.5}]}
    guard = analysis.settings_from_spec(spec).guards[0]
    assert (guard.margin, guard.promote_below) == (0.5, pytest.approx(1.8))
    for bad in (0, -1, 11, "x"):
        spec = {"guards": [{"name": "e", "type": "errorRate", "nonInferiorityMargin": bad}]}
        with pytest.raises(ValueError, match=r"spec\.analysis\.guards\[0\]\.nonInferiorityMargin"):
            analysis.settings_from_spec(spec)
    with pytest.raises(ValueError, match="nonInferiorityMargin"):
        GuardRail("g", GuardKind.ERROR_RATE, margin=0.0)


def test_non_inferiority_e_process_is_the_mirrored_harm_test() -> None:
    """The non-inferiority claim "candidate/baseline < B" is the harm test of baseline over candidate
    against 1/B. Hand case, one block: 0 candidate errors against 10 baseline errors at equal
    exposure; under r0 = 1/2 (baseline/candidate) pi0 = 1/3, and the grid alternative r = 10 x 1/2 = 5
    has pi = 5/6, so its likelihood ratio is (5/6 / (1/3))^10 and E is the grid mean of the six."""
    log_e = counts.log_e_process(np.array([10.0]), np.array([0.0]), np.array([1.0]), np.array([1.0]), 0.5)
    ratios = [(g * 0.5 / (g * 0.5 + 1)) / (1 / 3) for g in counts.GRID]
    expected = math.log(np.mean([r**10 for r in ratios]))
    assert log_e[0] == pytest.approx(expected)


def test_a_guard_not_yet_non_inferior_holds_a_promotion_back_and_says_which() -> None:
    """A 0.40 candidate whose error rate is 1.1x the baseline's 0.2%, 50 minutes at 100 rps: every KPI
    passes, the harm test cannot show 1.1x > 1 and a tight margin (0.25) cannot be shown either; the
    last look says Continue and names the guard and its ETA."""
    scenario = sim.Scenario(0.40, 100.0, candidate_error_ratio=1.1, minutes=50)
    tight = dataclasses.replace(
        AnalysisSettings(),
        guards=(
            GuardRail("error-rate", GuardKind.ERROR_RATE, margin=0.25),
            GuardRail("p50-latency", GuardKind.LATENCY_QUANTILE, quantile=0.5, margin=0.1),
        ),
    )
    judgement, at = _replay(scenario, tight, seed=2)
    assert at is None
    assert judgement.decision is Decision.CONTINUE  # type: ignore[attr-defined]
    reason = judgement.reason  # type: ignore[attr-defined]
    assert "promotion held back by the guard rails" in reason
    assert "error-rate not yet shown below 1.25x" in reason
    assert "ETA50" in reason
    guard = next(g for g in judgement.guards if g.name == "error-rate")  # type: ignore[attr-defined]
    assert guard.decision is Reading.OPEN
    assert "p50-latency" not in reason  # already non-inferior, so it does not hold anything back


def test_a_promotion_names_the_guards_shown_non_inferior() -> None:
    judgement, _ = _replay(sim.Scenario(0.40, 100.0), AnalysisSettings())
    assert judgement.decision is Decision.PROMOTE  # type: ignore[attr-defined]
    assert "guard rails non-inferior: error-rate" in judgement.reason  # type: ignore[attr-defined]
    for g in judgement.guards:  # type: ignore[attr-defined]
        assert g.decision is Reading.PASS


RUNS = 200  # per cell: Monte-Carlo s.e. 1.5 points at a 5% rate


@pytest.fixture(scope="module")
def error_cells() -> dict[str, dict[str, object]]:
    """20 rps, 200 runs a cell, seed 5: twice the baseline's error rate with a great p99 (0.30), and
    the same error rate with a clear p99 win (0.40)."""
    cells = [
        judge.Cell(0.30, 20.0, "exp1.1", RUNS, "errors-doubled", "error-rate"),
        judge.Cell(0.40, 20.0, "exp1.1", RUNS),
    ]
    rows = judge.run_grid(cells, seed=5, workers=1)
    return {r["stressor"]: r for r in rows if r["method"] == "ferrocanary"}


@pytest.mark.slow  # a few hundred simulated canaries
def test_twice_the_error_rate_is_not_promoted(error_cells: dict[str, dict[str, object]]) -> None:
    """Before the guards joined the promotion rule this cell promoted 82% of the time."""
    row = error_cells["errors-doubled"]
    assert float(row["promote"]) <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / RUNS)  # type: ignore[arg-type]


def test_the_same_error_rate_still_promotes_within_max_duration(
    error_cells: dict[str, dict[str, object]],
) -> None:
    assert float(error_cells["none"]["promote"]) >= 0.95  # type: ignore[arg-type]
