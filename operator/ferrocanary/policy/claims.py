"""Which Pending canary may start: the objects each canary acts on, and who goes first.

Two canaries that act on one object (a Deployment, the route) must never both run: each would move
the other's weights or scale down the other's build. A Pending canary waits while another canary of
its namespace that acts on one of its objects is running, or is Pending and older (creation time,
then name), so every replica and every look reach the same order without writing anything.

Pure: the caller says what it knows of the other canaries (``Claimant``, made from an object by
``claimant``), from a LIST or from its own watch's view.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ferrocanary.model import spec as canary_spec
from ferrocanary.policy.state import Phase, from_status

Seniority = tuple[str, str]  # (creationTimestamp, name): the older canary sorts first
Claimed = tuple[str, str]  # (kind, name) of an object in the canary's namespace


@dataclass(frozen=True)
class Claimant:
    """What the start rule needs of one canary: small enough to keep for every canary watched."""

    name: str
    seniority: Seniority
    phase: Phase
    objects: frozenset[Claimed]  # empty when its routing cannot be read: it never moves traffic


def seniority(obj: Mapping[str, Any]) -> Seniority:
    meta = obj.get("metadata") or {}
    return str(meta.get("creationTimestamp") or ""), str(meta.get("name", ""))


def claimant(obj: Mapping[str, Any]) -> Claimant:
    """The claimant of one RustCanary object (its spec read only as far as routing needs)."""
    try:
        objects = canary_spec.claims(canary_spec.parse_routing(obj.get("spec") or {}))
    except ValueError:
        objects = frozenset()
    return Claimant(
        name=str((obj.get("metadata") or {}).get("name", "")),
        seniority=seniority(obj),
        phase=from_status(obj.get("status")).phase,
        objects=objects,
    )


def blocker(
    name: str, mine: Seniority, wanted: frozenset[Claimed], others: Iterable[Claimant]
) -> tuple[Claimant, Claimed] | None:
    """The first canary (and one object it shares) that ``name`` must wait for, or None."""
    for other in others:
        if other.name == name or other.phase.terminal:
            continue
        if other.phase is Phase.PENDING and other.seniority > mine:
            continue  # a younger Pending canary waits for this one, not the other way round
        shared = wanted & other.objects
        if shared:
            return other, sorted(shared)[0]
    return None
