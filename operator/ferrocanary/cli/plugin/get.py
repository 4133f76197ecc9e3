"""``kubectl ferrocanary get [NAME]``: one RustCanary or the list, as text, wide, json, yaml or names."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from rich.console import RenderableType

from ferrocanary.cli import tables
from ferrocanary.cli.plugin import view
from ferrocanary.cli.plugin.cluster import RESOURCE, Cluster

STRUCTURED = ("json", "yaml")


def cmd_get(args: argparse.Namespace, cluster: Cluster) -> int:
    if args.name:
        show_one(cluster.get(args.name), args.name, args.output)
    else:
        items = cluster.list_all(args.all_namespaces)
        where = "any namespace" if args.all_namespaces else f"{cluster.namespace} namespace"
        show_list(items, args.output, all_namespaces=args.all_namespaces, where=where)
    return 0


def show_one(obj: Mapping[str, Any], name: str, output: str | None) -> None:
    if output in STRUCTURED:
        _dump(obj, output)
    elif output == "name":
        print(f"{RESOURCE}/{name}")
    else:
        for i, section in enumerate(_sections(obj, wide=output == "wide")):
            if i:
                print()
            tables.show(section)


def _sections(obj: Mapping[str, Any], *, wide: bool) -> list[RenderableType]:
    """The header, the KPIs, then guard rails and conditions when there are any."""
    status = obj.get("status") or {}
    sections: list[RenderableType] = [
        view.detail_text(obj),
        view.kpi_table("KPI", status.get("kpis") or [], wide=wide),
    ]
    if status.get("guards"):
        sections.append(view.kpi_table("GUARD RAIL", status["guards"], wide=wide))
    if status.get("conditions"):
        sections.append(view.conditions_table(status))
    return sections


def show_list(items: list[dict[str, Any]], output: str | None, *, all_namespaces: bool, where: str) -> None:
    if output in STRUCTURED:
        _dump({"apiVersion": "v1", "kind": "List", "items": items}, output)
    elif output == "name":
        for obj in items:
            print(f"{RESOURCE}/{obj['metadata']['name']}")
    elif not items:
        print(f"No resources found in {where}.", file=sys.stderr)
    else:
        tables.show(view.list_table(items, wide=output == "wide", all_namespaces=all_namespaces))


def _dump(data: Any, fmt: str | None) -> None:
    # Both escape control characters themselves: json as \u001b, yaml by quoting the string.
    if fmt == "json":
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        import yaml

        print(yaml.safe_dump(data, sort_keys=False), end="")
