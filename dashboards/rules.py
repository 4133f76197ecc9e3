"""Recording and alert rules on the operator's own series (tested by rules/tests/ with promtool).

- ``namespace_name_outcome:ferrocanary_decisions:rate5m``: the judge's decisions per second by
  outcome, per canary (``queries.decision_rate``).
- ``namespace_name:ferrocanary_canary_phase:code``: the phase as one number (index in ``Phase``).
- Alerts: a canary whose judge has only said Hold for 15 minutes (missing metrics, Prometheus down,
  no traffic), a rollback, an Invalid canary, a manual promotion pending for an hour, slow ticks.
"""

from __future__ import annotations

from typing import Any

from dashboards import promql
from ferrocanary.metrics import queries as q
from ferrocanary.policy.state import Phase

DECISIONS_5M = "namespace_name_outcome:ferrocanary_decisions:rate5m"
PHASE_CODE = "namespace_name:ferrocanary_canary_phase:code"
_ALL = 'namespace!=""'  # every canary (all carry a namespace)

# Holding: Hold decisions in the last 5 minutes and no other outcome. With `for: 15m` the alert
# fires after 15 minutes of holding from the start, or 20 after the last other decision (the
# 5-minute rate window has to empty first); one non-Hold decision resets it.
HOLDING = (
    f'{DECISIONS_5M}{{outcome="Hold"}} > 0 unless on (namespace, name) {DECISIONS_5M}{{outcome!="Hold"}} > 0'
)

_WHO = "RustCanary {{ $labels.namespace }}/{{ $labels.name }}"
_GET = "`kubectl ferrocanary get {{ $labels.name }} -n {{ $labels.namespace }}`"


def _alert(
    name: str, expr: str, *, severity: str, summary: str, description: str, for_: str = ""
) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_:
        rule["for"] = for_
    rule["labels"] = {"severity": severity}
    rule["annotations"] = {"summary": summary, "description": description}
    return rule


def rules() -> dict[str, Any]:
    recording = [
        {"record": DECISIONS_5M, "expr": q.decision_rate(_ALL, "5m")},
        {"record": PHASE_CODE, "expr": promql.phase_code(_ALL)},
    ]
    alerts = [
        _alert(
            "FerrocanaryCanaryHolding",
            HOLDING,
            severity="warning",
            summary=f"{_WHO} has held for 15 minutes without a decision",
            description="Every judge decision for 15 minutes was Hold: metrics missing, Prometheus "
            f"unreachable or no traffic. {_GET} and the canary's Events say which.",
            for_="15m",
        ),
        _alert(
            "FerrocanaryCanaryRolledBack",
            promql.phase_entered(_ALL, (Phase.ROLLED_BACK,), "15m"),
            severity="warning",
            summary=f"{_WHO} rolled back",
            description="The Rust build missed a target, broke a guard rail or faulted; all traffic is back "
            f"on the Python build. {_GET} names the KPI.",
        ),
        _alert(
            "FerrocanaryCanaryInvalid",
            f'{q.PHASE}{{phase="{Phase.INVALID.value}"}} == 1',
            severity="warning",
            summary=f"{_WHO} is Invalid",
            description=f"Its spec or its metrics cannot support a decision; {_GET} shows the reason.",
            for_="1m",
        ),
        _alert(
            "FerrocanaryWaitingPromotion",
            f'{q.PHASE}{{phase="{Phase.WAITING_PROMOTION.value}"}} == 1',
            severity="info",
            summary=f"{_WHO} has waited an hour for a manual promotion",
            description="Every KPI passed; `kubectl ferrocanary promote {{ $labels.name }} -n "
            "{{ $labels.namespace }}` finishes it.",
            for_="1h",
        ),
        _alert(
            "FerrocanaryReconcileSlow",
            f"{q.reconcile_p99('5m')} > 5",
            severity="warning",
            summary="ferrocanary reconcile ticks take more than 5 s (p99)",
            description="Usually a slow Prometheus: see spec.analysis.prometheus.timeout and the operator's "
            "log.",
            for_="10m",
        ),
    ]
    return {
        "groups": [
            {"name": "ferrocanary.recording", "rules": recording},
            {"name": "ferrocanary.alerts", "rules": alerts},
        ]
    }
