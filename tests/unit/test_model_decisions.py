"""The judgement's JSON shape (what `analyze --json` and the status carry)."""

from __future__ import annotations

import json
import math

from ferrocanary.model import analysis
from ferrocanary.model.analysis import Direction
from ferrocanary.model.decisions import CostProjection, Decision, Judgement, KpiResult, Reading
from ferrocanary.policy import report


def test_judgement_to_dict_is_json_ready_and_snake_case() -> None:
    kpi = KpiResult("p99-latency", 0.5, 0.42, 0.58, 0.6, Direction.LOWER, Reading.PASS, 0.0, math.inf, "ok")
    judgement = Judgement(
        Decision.PROMOTE,
        "all pass",
        (kpi,),
        (),
        25,
        CostProjection(100.0, 60.0, 0.4),
        fault_rate_upper_bound=0.1,
    )
    data = judgement.to_dict()
    text = json.dumps(data, allow_nan=False)  # infinity must have become null
    assert json.loads(text)["kpis"][0] == {
        "name": "p99-latency",
        "estimate": 0.5,
        "lower": 0.42,
        "upper": 0.58,
        "target": 0.6,
        "direction": "lower",
        "decision": "Pass",
        "eta50_seconds": 0.0,
        "eta80_seconds": None,
        "detail": "ok",
    }
    assert data["decision"] == "Promote"
    assert data["cost"] == {"baseline_monthly": 100.0, "candidate_monthly": 60.0, "saving_fraction": 0.4}


def test_terminal_decisions() -> None:
    assert {d for d in Decision if d.terminal} == {
        Decision.PROMOTE,
        Decision.ROLLBACK,
        Decision.INVALID,
        Decision.INCONCLUSIVE,
    }


def test_the_p99_printer_column_stays_narrow_when_a_first_look_bound_is_astronomical() -> None:
    """At two blocks the p99 interval's upper bound can be 1e129; `kubectl get` must still show it in a
    few characters, not 130 digits that push every other column off the screen."""
    settings = analysis.AnalysisSettings()
    p99 = next(k.name for k in settings.kpis if k.quantile is not None and abs(k.quantile - 0.99) < 1e-9)
    wide = KpiResult(p99, 0.35, 0.0, 1.83e129, 0.6, Direction.LOWER, Reading.OPEN, 0.0, math.inf, "early")
    column = report.p99_ratio(Judgement(Decision.CONTINUE, "early", (wide,), (), 2), settings)
    assert column == "0.35 [0.00, 1.8e+129]"
    usual = KpiResult(p99, 0.52, 0.47, 0.58, 0.6, Direction.LOWER, Reading.PASS, 0.0, math.inf, "ok")
    done = Judgement(Decision.PROMOTE, "ok", (usual,), (), 30)
    assert report.p99_ratio(done, settings) == "0.52 [0.47, 0.58]"
