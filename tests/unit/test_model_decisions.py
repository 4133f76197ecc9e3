"""The judgement's JSON shape (what `analyze --json` and the status carry)."""

from __future__ import annotations

import json
import math

from ferrocanary.model.analysis import Direction
from ferrocanary.model.decisions import CostProjection, Decision, Judgement, KpiResult, Reading


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
