"""``ferrocanary queries``: every PromQL the operator will run for a RustCanary, per arm and signal.

Resolved as the operator resolves them (``spec.analysis.metrics``'s preset and templates, the
selectors, the analysis interval), so a team can paste each into Prometheus, or into a rules file
for ``promtool check rules``, before starting the canary. ``kubectl ferrocanary queries NAME``
prints the same for a RustCanary in the cluster. A spec the operator would refuse is exit code 2
with the error naming the field.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

EXIT_BAD_INPUT = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "queries",
        help="print every PromQL the operator will run for a RustCanary, per arm and signal",
        description="Resolve spec.analysis.metrics (preset, templates, selectors) of a RustCanary manifest "
        "and print each query the operator runs, per arm and signal.",
    )
    parser.add_argument(
        "--canary",
        required=True,
        metavar="CR.yaml",
        help="a RustCanary manifest (with the MetricTemplate it references, if any, in the same file)",
    )
    parser.add_argument(
        "-n", "--namespace", help="the canary's namespace (default: metadata.namespace, else default)"
    )
    parser.add_argument("--json", action="store_true", help="print the queries as JSON on stdout")
    parser.set_defaults(func=run)


def resolve(
    obj: Mapping[str, Any],
    namespace: str | None = None,
    templates: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The queries of one RustCanary object, as ``--json`` prints them; ValueError naming the field.

    ``templates``: MetricTemplate objects by name, for a canary whose metrics reference one.
    """
    from ferrocanary.metrics import presets, protocol
    from ferrocanary.model import metrics as metrics_spec
    from ferrocanary.model import spec as canary_spec

    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    assert isinstance(metadata, Mapping)
    where = namespace or metadata.get("namespace") or "default"
    raw = obj.get("spec") or {}
    if not isinstance(raw, Mapping):
        raise ValueError("spec: expected an object")
    analysis_spec = raw.get("analysis") if isinstance(raw.get("analysis"), Mapping) else {}
    wanted = metrics_spec.template_name(analysis_spec or {})
    if wanted is not None:
        template = (templates or {}).get(wanted)
        if template is None:
            raise ValueError(f"spec.analysis.metrics.templateRef.name: MetricTemplate {wanted} not found")
        raw = metrics_spec.spec_with_template(raw, template.get("spec") or {})
    spec = canary_spec.parse(raw)
    resolved = protocol.resolved_queries(str(where), spec)
    return {
        "name": metadata.get("name", ""),
        "namespace": where,
        "preset": spec.metrics.preset,
        "resources": spec.metrics.resources,
        "templates": sorted(spec.metrics.templates),
        "latencyUnitSeconds": resolved["candidate"].latency_unit_seconds,
        "bucketAdvice": presets.bucket_advice(spec),
        "readRaw": ["requests", "errors", "latency", "cpu", "panics"],
        "queries": {arm: q.by_signal() for arm, q in resolved.items()},
        "customKpis": {name: q.by_arm() for name, q in protocol.custom_queries(str(where), spec).items()},
        "pricing": _pricing(str(where), spec),
    }


def _pricing(namespace: str, spec: Any) -> dict[str, Any]:
    """OpenCost's price queries per arm, and the static prices used when they have no answer."""
    from ferrocanary.metrics import opencost, protocol

    selectors = protocol.ArmSelectors.of(namespace, spec)
    pods = {"baseline": selectors.baseline_pods, "candidate": selectors.candidate_pods}
    static = spec.settings.pricing
    return {
        "opencost": {
            opencost.SERIES[signal][1]: by_arm for signal, by_arm in opencost.arm_queries(pods).items()
        },
        "static": {"cpuHour": static.cpu_hour, "memoryGiBHour": static.memory_gib_hour},
    }


def _documents_of(path: str) -> tuple[Mapping[str, Any], dict[str, Mapping[str, Any]]]:
    """The file's first RustCanary, and its MetricTemplates by name."""
    import yaml

    with open(path, encoding="utf-8") as handle:
        documents = [d for d in yaml.safe_load_all(handle) if isinstance(d, dict)]
    canaries = [d for d in documents if d.get("kind") == "RustCanary"]
    if not canaries:
        raise ValueError(f"{path}: no RustCanary document found")
    templates: dict[str, Mapping[str, Any]] = {
        str((d.get("metadata") or {}).get("name")): d for d in documents if d.get("kind") == "MetricTemplate"
    }
    first: Mapping[str, Any] = canaries[0]
    return first, templates


def show(result: Mapping[str, Any], *, as_json: bool) -> None:
    """``result`` as JSON, or as a table per arm for people."""
    if as_json:
        print(json.dumps(result, indent=2))
        return
    from rich.table import Table
    from rich.text import Text

    from ferrocanary.cli import tables

    title = (
        f"{result['namespace']}/{result['name']}: preset {result['preset']}, resources {result['resources']}"
    )
    # Text, not str: rich would read a regex's [a-z0-9] as markup and drop it
    table = Table(title=Text(tables.printable(title)), show_lines=True)
    table.add_column("SIGNAL", no_wrap=True)
    table.add_column("ARM", no_wrap=True)
    table.add_column("PROMQL", overflow="fold")
    for signal in result["queries"]["baseline"]:
        for arm, by_signal in result["queries"].items():
            table.add_row(signal, arm, tables.cell(by_signal.get(signal, "")))
    for label, arm, query in _extra_rows(result):
        table.add_row(tables.cell(label), arm, tables.cell(query))
    tables.show(table)
    print("requests, errors, latency, cpu and panics are read raw at block boundaries and differenced.")
    print(_pricing_note(result["pricing"]["static"]))
    if result["latencyUnitSeconds"] != 1.0:
        print(f"latency buckets (le) are converted to seconds (x{result['latencyUnitSeconds']:g}).")
    if result["bucketAdvice"]:
        print(f"note: {result['bucketAdvice']}.")


def _extra_rows(result: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(label, arm, query) of each custom KPI's queries and each OpenCost price query."""
    rows = [
        (f"{name} ({part})", arm, query)
        for name, by_arm in result["customKpis"].items()
        for arm, by_part in by_arm.items()
        for part, query in by_part.items()
    ]
    rows += [
        (f"price ({key})", arm, query)
        for key, by_arm in result["pricing"]["opencost"].items()
        for arm, query in by_arm.items()
    ]
    return rows


def _pricing_note(static: Mapping[str, float]) -> str:
    return (
        "cost: each build priced from OpenCost (the price rows) when both builds have an answer, else at "
        f"${static['cpuHour']:g} per vCPU-hour and ${static['memoryGiBHour']:g} per GiB-hour "
        "(spec.analysis.pricing)."
    )


def run(args: argparse.Namespace) -> int:
    try:
        canary, templates = _documents_of(args.canary)
        result = resolve(canary, args.namespace, templates)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    show(result, as_json=args.json)
    return 0
