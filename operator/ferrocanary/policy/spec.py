"""The rollout part of a RustCanary spec, read into a ``Plan`` (the analysis part is model.analysis).

Errors name the field, as the CRD's CEL rules do, so a spec that slipped past an old CRD still gets
an Invalid phase whose message a person can act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ferrocanary.model import analysis
from ferrocanary.policy.state import Plan

DEFAULT_WEIGHTS: tuple[int, ...] = (5, 10, 25, 50)


def plan_from_spec(spec: Mapping[str, Any]) -> Plan:
    """Steps, dwell, time limit and promotion mode; ValueError naming the field when malformed."""
    steps = spec.get("steps") or {}
    promotion = spec.get("promotion") or {}
    raw_weights = steps.get("weights", DEFAULT_WEIGHTS)
    if not isinstance(raw_weights, list | tuple) or not all(
        isinstance(w, int) and not isinstance(w, bool) for w in raw_weights
    ):
        raise ValueError(f"spec.steps.weights: expected a list of integers, got {raw_weights!r}")
    min_dwell = analysis.parse_duration(steps.get("minDwell", "5m"), "spec.steps.minDwell")
    max_duration = analysis.parse_duration(
        (spec.get("analysis") or {}).get("maxDuration", "2h"), "spec.analysis.maxDuration"
    )
    mode = promotion.get("mode", "auto")
    if mode not in ("auto", "manual"):
        raise ValueError(f"spec.promotion.mode: expected auto or manual, got {mode!r}")
    return Plan(
        weights=tuple(raw_weights),
        min_dwell_seconds=min_dwell,
        max_duration_seconds=max_duration,
        manual_promotion=mode == "manual",
        require_final_step=bool(promotion.get("requireFinalStep", False)),
    )
