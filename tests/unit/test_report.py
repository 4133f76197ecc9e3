"""The verdict report: a person reads the verdict, every KPI's interval and the plots from it alone."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from ferrocanary.judge import replay
from ferrocanary.model import analysis, recording
from ferrocanary.report import render, trajectory

RECORDINGS = Path(__file__).parent.parent / "data" / "recordings"


@pytest.mark.parametrize(("name", "verdict"), [("promote", "Promote"), ("rollback", "Rollback")])
def test_report_states_the_verdict_and_draws_every_plot(name: str, verdict: str, tmp_path: Path) -> None:
    rec = recording.load(RECORDINGS / f"{name}.json")
    settings = analysis.AnalysisSettings()
    looks, decided = trajectory.trajectory(rec, settings)
    final, replay_decided = replay.replay(rec, settings)
    # The trajectory ends where the controller's replay decides, with the same judgement.
    assert decided == replay_decided
    assert looks[-1].decision == final.decision
    assert looks[-1].decision.value == verdict
    assert len(looks) == (decided + 1 if decided is not None else len(rec.blocks))

    data = render.ReportInput(
        name, "shop", verdict, final.reason, rec.blocks[0].start, None, rec, looks, settings, decided
    )
    path = render.write(data, tmp_path)
    text = path.read_text()
    assert f"**Verdict: {verdict}.**" in text
    assert final.reason in text
    for kpi in final.kpis:
        assert f"| {kpi.name} |" in text
    for image in ("weight.png", "kpis.png", "latency.png", "cost.png"):
        assert f"]({image})" in text
        pixels = matplotlib.image.imread(tmp_path / image)
        assert pixels.shape[0] > 200
        assert pixels.shape[1] > 500
        assert pixels.std() > 0.01  # not a blank canvas


def test_an_empty_recording_still_gives_a_report_that_says_so(tmp_path: Path) -> None:
    rec = recording.Recording(interval_seconds=60, latency_bucket_bounds=(0.001, 0.002), blocks=())
    looks, decided = trajectory.trajectory(rec, analysis.AnalysisSettings())
    assert looks == []
    assert decided is None
    data = render.ReportInput(
        "x", "ns", "Progressing", "no data yet", None, None, rec, looks, analysis.AnalysisSettings()
    )
    text = render.write(data, tmp_path).read_text()
    assert "**Verdict: Progressing.** no data yet" in text
    assert not list(tmp_path.glob("*.png"))


def test_an_interval_without_bounds_fills_its_panel_and_no_data_stays_a_gap() -> None:
    nan, inf = float("nan"), float("inf")
    estimate = np.array([nan, 2.8, 2.8, 2.7, 2.6])
    lower = np.array([nan, nan, 0.0, 0.7, 1.1])
    upper = np.array([nan, nan, inf, 12.0, 6.1])
    low, high = render.band(estimate, lower, upper, bottom=0.5, top=7.0)
    # no estimate: nothing drawn; an estimate with no interval yet and an infinite side: the whole
    # panel; finite bounds: as they are, cut at the panel's edges.
    assert np.isnan(low[0])
    assert np.isnan(high[0])
    assert list(low[1:]) == [0.5, 0.5, 0.7, 1.1]
    assert list(high[1:]) == [7.0, 7.0, 7.0, 6.1]
