"""``ferrocanary analyze``: replay a recording through the judge, one look per block, as the controller would.

Stops at the first terminal decision (Promote, Rollback, Invalid, Inconclusive) and prints the
judgement: a table for people, or ``--json`` for machines. A malformed recording or manifest is
exit code 2 with a message naming the block index and field.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from ferrocanary.cli import tables
from ferrocanary.model import formatting

if TYPE_CHECKING:
    from rich.table import Table

EXIT_BAD_INPUT = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="replay a recording (JSON) through the judge and print the verdict",
        description="Replay a recording block by block as the controller would and stop at the first "
        "terminal decision.",
    )
    parser.add_argument(
        "--recording", required=True, metavar="FILE", help="recording JSON (ferrocanary.recording/v1)"
    )
    parser.add_argument(
        "--canary", metavar="CR.yaml", help="take the analysis settings from a RustCanary manifest"
    )
    parser.add_argument("--json", action="store_true", help="print the judgement as JSON on stdout")
    parser.set_defaults(func=run)


def _settings_from_manifest(path: str) -> Any:
    import yaml

    from ferrocanary.model import spec as canary_spec

    with open(path, encoding="utf-8") as handle:
        documents = [d for d in yaml.safe_load_all(handle) if d is not None]
    canaries = [d for d in documents if isinstance(d, dict) and d.get("kind") == "RustCanary"]
    if not canaries:
        raise ValueError(f"{path}: no RustCanary document found")
    spec = canaries[0].get("spec") or {}
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: spec: expected an object")
    return canary_spec.parse(spec).settings


def _print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console()
    at = result["decided_at_block"]
    where = f"at block {at}" if at is not None else "no terminal decision yet"
    headline = Text.assemble((result["decision"], "bold"), f" ({where}, {result['blocks_used']} blocks used)")
    # Text from the recording prints literally (Text, not markup); the highlighter colours the
    # numbers as rich does for a plain string.
    console.print(console.highlighter(headline))
    console.print(console.highlighter(tables.cell(result["reason"])))
    notes = []
    for title, rows in (("KPIs", result["kpis"]), ("Guard rails", result["guards"])):
        if rows:
            console.print(_kpi_table(title, rows))
            notes += _notes(rows)
    for note in notes:
        console.print(console.highlighter(tables.cell(f"  {note}")))
    for line in _summary(result):
        console.print(line)


def _kpi_table(title: str, rows: list[dict[str, Any]]) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in ("name", "estimate [interval]", "target", "decision", "ETA50/80"):
        table.add_column(column, no_wrap=True)
    for k in rows:
        shown = formatting.significant(k["estimate"])
        if k["lower"] is not None:
            shown += f" [{formatting.significant(k['lower'])}, {formatting.significant(k['upper'])}]"
        target = (
            f"{formatting.relation(k['direction'], otherwise='>=')} {formatting.significant(k['target'])}"
        )
        table.add_row(tables.cell(k["name"]), shown, target, tables.cell(k["decision"]), _etas(k))
    return table


def _etas(k: dict[str, Any]) -> str:
    """ETA50 / ETA80 while a KPI is still open (a decided one has none)."""
    if k["decision"] not in ("Open", "NoData"):
        return "-"
    return " / ".join(
        formatting.minutes(k[key], unit="m", missing="never") for key in ("eta50_seconds", "eta80_seconds")
    )


def _notes(rows: list[dict[str, Any]]) -> list[str]:
    # The detail of a ratio KPI repeats estimate and interval; list it only when it adds something.
    return [
        f"{k['name']}: {k['detail']}"
        for k in rows
        if k["detail"] and (k["lower"] is None or k["decision"] == "NoData")
    ]


def _summary(result: dict[str, Any]) -> list[str]:
    """The cost projection and the fault-rate bound, when the judgement has them."""
    lines = []
    cost = result.get("cost")
    if cost:
        lines.append(
            f"Projected monthly bill at 100% traffic: baseline {cost['baseline_monthly']:,.2f}, "
            f"candidate {cost['candidate_monthly']:,.2f} (saving {100 * cost['saving_fraction']:.1f}%)"
        )
    if result.get("fault_rate_upper_bound") is not None:
        lines.append(f"Candidate fault rate upper bound: {result['fault_rate_upper_bound']:.3g} per pod-hour")
    return lines


def run(args: argparse.Namespace) -> int:
    import yaml

    from ferrocanary.judge import replay
    from ferrocanary.model import analysis, recording

    try:
        rec = recording.load(args.recording)
    except recording.RecordingError as exc:
        print(f"ferrocanary analyze: {args.recording}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"ferrocanary analyze: cannot read {args.recording}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        if args.canary:
            settings = _settings_from_manifest(args.canary)
        else:
            # A recording written by the operator or the demo carries the spec.analysis it was judged with.
            settings = analysis.settings_from_spec(rec.analysis)
    except OSError as exc:
        print(f"ferrocanary analyze: cannot read {args.canary}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except yaml.YAMLError as exc:
        print(f"ferrocanary analyze: {args.canary}: not valid YAML: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValueError as exc:
        print(f"ferrocanary analyze: {args.canary or args.recording}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    settings = analysis.with_prices(settings, rec.prices)  # OpenCost's, when the recording carries them
    if rec.interval_seconds != settings.interval_seconds and args.canary:
        print(
            f"ferrocanary analyze: note: the recording's interval ({rec.interval_seconds:g}s) differs from "
            f"spec.analysis.interval ({settings.interval_seconds:g}s); using the recording's",
            file=sys.stderr,
        )
    if rec.interval_seconds != settings.interval_seconds:
        import dataclasses

        settings = dataclasses.replace(settings, interval_seconds=rec.interval_seconds)

    judgement, decided_at = replay.replay(rec, settings)
    body = judgement.to_dict()
    result = {
        "decision": body["decision"],
        "reason": body["reason"],
        "decided_at_block": decided_at,
        "blocks_used": body["blocks_used"],
        "kpis": body["kpis"],
        "guards": body["guards"],
        "cost": body["cost"],
        "fault_rate_upper_bound": body["fault_rate_upper_bound"],
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    else:
        _print_table(result)
    return 0
