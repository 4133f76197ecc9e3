"""A RustCanary's status as ``kubectl ferrocanary get`` shows it: the list, the header, the KPI tables.

Every value from the object is printed literally (``tables.cell``/``tables.printable``): status text
can hold anything a Prometheus answer or a user put there. Numbers and times are
``ferrocanary.model.formatting``'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text

from ferrocanary.cli.tables import cell, kubectl_table, printable
from ferrocanary.kube import canaries
from ferrocanary.model import formatting
from ferrocanary.model import spec as canary_spec
from ferrocanary.policy.state import Phase

READING_STYLES = {"Pass": "green", "Miss": "red", "Open": "yellow", "NoData": "dim"}
PHASE_STYLES = {
    Phase.PROMOTED.value: "green",
    Phase.ROLLED_BACK.value: "red",
    Phase.INVALID.value: "red",
    Phase.INCONCLUSIVE.value: "yellow",
    Phase.PAUSED.value: "magenta",
    Phase.WAITING_PROMOTION.value: "yellow",
}
LIST_COLUMNS = ["NAME", "PHASE", "WEIGHT", "VERDICT", "P99 RATIO", "AGE"]
WIDE_LIST_COLUMNS = ["STEP", "DECISION", "REASON"]
KPI_COLUMNS = ["ESTIMATE", "INTERVAL", "TARGET", "DECISION", "ETA 50%", "ETA 80%"]
_LABEL_WIDTH = 13  # "Last action: ", the longest label, sets where every header value starts


def interval(item: Mapping[str, Any]) -> str:
    return formatting.interval(item.get("lower"), item.get("upper"))


def target(item: Mapping[str, Any]) -> str:
    if item.get("target") is None:
        return "-"
    return f"{formatting.relation(item.get('direction'))} {formatting.number(item['target'])}"


def _weight(status: Mapping[str, Any]) -> str:
    return f"{status['weight']}%" if status.get("weight") is not None else "-"


def _weights(obj: Mapping[str, Any]) -> tuple[int, ...]:
    try:
        return canary_spec.parse_plan(obj.get("spec") or {}).weights
    except ValueError:
        return ()  # a refused spec: its status says why; the step count is unknown


def _step(obj: Mapping[str, Any]) -> str:
    step = (obj.get("status") or {}).get("stepIndex")
    return f"{step + 1}/{len(_weights(obj))}" if isinstance(step, int) and step >= 0 else "-"


def _phase(status: Mapping[str, Any]) -> str:
    return str(status.get("phase", "Pending"))


def list_table(items: Sequence[Mapping[str, Any]], *, wide: bool, all_namespaces: bool) -> Table:
    columns = (["NAMESPACE"] if all_namespaces else []) + LIST_COLUMNS + (WIDE_LIST_COLUMNS if wide else [])
    table = kubectl_table(columns)
    for obj in items:
        table.add_row(*_list_row(obj, wide=wide, all_namespaces=all_namespaces))
    return table


def _list_row(obj: Mapping[str, Any], *, wide: bool, all_namespaces: bool) -> list[Text]:
    meta, status = obj.get("metadata", {}), obj.get("status") or {}
    phase = _phase(status)
    row = [
        cell(meta.get("name", "")),
        cell(phase, PHASE_STYLES.get(phase)),
        cell(_weight(status)),
        cell(status.get("verdict") or "-"),
        cell(status.get("p99Ratio") or "-"),
        cell(formatting.age(meta.get("creationTimestamp"))),
    ]
    if all_namespaces:
        row.insert(0, cell(meta.get("namespace", "")))
    if wide:
        row += [
            cell(_step(obj)),
            cell(status.get("decision") or "-"),
            cell(status.get("decisionReason") or "-"),
        ]
    return row


def kpi_table(title: str, items: Sequence[Mapping[str, Any]], *, wide: bool) -> Table:
    table = kubectl_table([title, *KPI_COLUMNS] + (["DETAIL"] if wide else []))
    for item in items:
        reading = str(item.get("decision") or "-")
        row = [
            cell(item.get("name", "")),
            cell(formatting.number(item.get("estimate"))),
            cell(interval(item)),
            cell(target(item)),
            cell(reading, READING_STYLES.get(reading)),
            cell(formatting.duration(item.get("eta50Seconds"))),
            cell(formatting.duration(item.get("eta80Seconds"))),
        ]
        table.add_row(*(row + ([cell(item.get("detail") or "")] if wide else [])))
    return table


# A header line: label, value (already printable), and the value's style.
_Field = tuple[str, str, str | None]


def _field(label: str, value: Any, style: str | None = None) -> _Field:
    return f"{label:<{_LABEL_WIDTH}}", printable(value), style


def _position_fields(obj: Mapping[str, Any], now: datetime | None) -> list[_Field]:
    """Where the canary stands and why: phase, weight and step, decision, verdict, timing."""
    meta, status = obj.get("metadata", {}), obj.get("status") or {}
    step = status.get("stepIndex")
    steps = " ".join(f"[{w}]" if i == step else str(w) for i, w in enumerate(_weights(obj)))
    weight = f"{status['weight']}% on the Rust build" if status.get("weight") is not None else "-"
    verdict_reason = f": {status['verdictReason']}" if status.get("verdictReason") else ""
    started, last = status.get("startedAt"), status.get("lastTickAt")
    return [
        _field("Name:", meta.get("name", "")),
        _field("Namespace:", meta.get("namespace", "")),
        _field("Phase:", _phase(status), PHASE_STYLES.get(_phase(status))),
        _field("Weight:", f"{weight}  (steps: {steps or '-'})"),
        _field(
            "Decision:",
            f"{status.get('decision') or '-'}: {status.get('decisionReason') or 'no analysis yet'}",
        ),
        _field("Verdict:", f"{status.get('verdict') or '-'}{verdict_reason}"),
        _field(
            "Started:",
            f"{started or '-'} ({formatting.age(started, now)} ago);"
            f" last analysis {formatting.age(last, now)} ago on {status.get('blocksUsed', 0)} blocks",
        ),
    ]


def _cost_fields(status: Mapping[str, Any]) -> list[_Field]:
    cost = status.get("cost") or {}
    if cost.get("baselineMonthly") is None or cost.get("candidateMonthly") is None:
        return []
    saving = cost.get("savingFraction")
    python, rust = cost["baselineMonthly"], cost["candidateMonthly"]
    shown = f"Python ${python:,.2f}/month, Rust ${rust:,.2f}/month"
    return [_field("Cost:", shown + (f" (saving {saving:.1%})" if isinstance(saving, int | float) else ""))]


def _action_fields(obj: Mapping[str, Any]) -> list[_Field]:
    """The last action the operator handled, and one it has not handled yet."""
    fields = []
    action = (obj.get("status") or {}).get("lastAction") or {}
    if action:
        shown = f"{action.get('action')} at {action.get('at')}: {action.get('result', '')}"
        fields.append(_field("Last action:", shown))
    pending = (obj.get("metadata", {}).get("annotations") or {}).get(canaries.ACTION_ANNOTATION)
    if pending:
        fields.append(_field("Pending:", f"{pending} (waiting for the operator)"))
    return fields


def _detail_fields(obj: Mapping[str, Any], now: datetime | None) -> list[_Field]:
    status = obj.get("status") or {}
    return _position_fields(obj, now) + _cost_fields(status) + _action_fields(obj)


def detail_lines(obj: Mapping[str, Any], now: datetime | None = None) -> list[str]:
    """The header of ``get NAME``: where the canary stands and why, one fact a line (plain text)."""
    return [label + value for label, value, _ in _detail_fields(obj, now)]


def detail_text(obj: Mapping[str, Any], now: datetime | None = None) -> Text:
    """:func:`detail_lines` for the terminal: the phase in its colour, everything else as it is."""
    text = Text()
    for i, (label, value, style) in enumerate(_detail_fields(obj, now)):
        text.append(("\n" if i else "") + label)
        text.append(value, style or "")
    return text


def conditions_table(status: Mapping[str, Any], now: datetime | None = None) -> Table:
    table = kubectl_table(["CONDITION", "STATUS", "REASON", "AGE", "MESSAGE"])
    for c in status.get("conditions") or []:
        table.add_row(
            cell(c.get("type")),
            cell(c.get("status")),
            cell(c.get("reason", "")),
            cell(formatting.age(c.get("lastTransitionTime"), now)),
            cell(c.get("message", "")),
        )
    return table
