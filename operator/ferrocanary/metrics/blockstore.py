"""The blocks a canary has already fetched, kept in the operator's memory so each look fetches only new ones.

A block that is complete (it ended ``prometheus.lag`` ago) never changes in Prometheus, so the
source fetches blocks ``0..n-1`` once and, at the next look, only the boundaries after ``n``. What it
keeps per canary is exactly what it needs to go on differencing counters the way a full fetch would:
each block's per-series increases summed (by ``le`` for the latency histogram), each gauge's value,
and every counter series' latest value at the last boundary read (so a reset, a new pod or a gap is
read the same way as in one fetch from the start).

This is a cache, never state: an entry is keyed by everything that decides what the blocks are (the
Prometheus address, the canary's start, the block length, its selectors), so a changed spec misses
and fetches from the start; a restarted operator has an empty store and rebuilds each canary from
Prometheus at its first look. Block weights are not kept: they come from the step history in status
at every look, because a restored route rewrites the history of blocks already fetched. The store
holds at most ``capacity`` canaries (least recently used go first) and drops a canary's entries when
it finishes or is deleted.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

SeriesKey = str  # a series' labels, "k=v" joined by NUL (compact: one string, not a tuple of pairs)
Signal = tuple[str, str]  # (arm, signal name)
Owner = tuple[str, str]  # (namespace, name)


def series_key(labels: dict[str, Any]) -> SeriesKey:
    return "\0".join(f"{k}={v}" for k, v in sorted(labels.items()))


@dataclass
class Entry:
    """One canary's fetched blocks: ``count`` complete blocks, indexed 0..count-1.

    A fresh fetch fills ``counters`` (per block, the increase by ``le``); merged into the store they
    are packed as one array of doubles per block in the order of ``_les`` (NaN: no such bucket in
    that block), about 1 KiB per histogram block instead of a dict of 140 entries.
    """

    count: int = 0
    counters: dict[Signal, dict[int, dict[str, float]]] = field(default_factory=dict)
    gauges: dict[Signal, dict[int, float]] = field(default_factory=dict)
    # Every counter series' latest value at a boundary <= count (continues the differencing).
    last: dict[Signal, dict[SeriesKey, float]] = field(default_factory=dict)
    # Each arm's OpenCost prices at the end of the newest block (metrics/opencost.py; {}: none).
    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    _les: dict[Signal, list[str]] = field(default_factory=dict)
    _packed: dict[Signal, dict[int, array[float]]] = field(default_factory=dict)

    def merge(self, fresh: Entry) -> None:
        """Add the blocks of a successful incremental fetch (``fresh.count`` is the new total)."""
        for signal, blocks in fresh.counters.items():
            les = self._les.setdefault(signal, [])
            index = {le: i for i, le in enumerate(les)}
            packed = self._packed.setdefault(signal, {})
            for k, values in blocks.items():
                for le in values:
                    if le not in index:
                        index[le] = len(les)
                        les.append(le)
                row = array("d", [math.nan]) * len(les)
                for le, value in values.items():
                    row[index[le]] = value
                packed[k] = row
        for signal, gauge in fresh.gauges.items():
            self.gauges.setdefault(signal, {}).update(gauge)
        self.last.update(fresh.last)
        self.prices = fresh.prices
        self.count = fresh.count

    def blocks(self, signal: Signal, count: int) -> dict[int, dict[str, float]]:
        """Blocks 0..count-1 of a counter as fetched: the increase by ``le`` ("" without one)."""
        les = self._les.get(signal, [])
        return {
            k: {le: v for le, v in zip(les, row, strict=False) if not math.isnan(v)}
            for k, row in self._packed.get(signal, {}).items()
            if k < count
        }


class BlockStore:
    """Entries by key, least recently used dropped past ``capacity``; safe across threads."""

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[Any, tuple[Owner, Entry]] = OrderedDict()
        # Each canary's keys, so dropping a finished canary does not scan every entry (at 1,000
        # canaries finishing within minutes, the scan was 6% of the operator's CPU).
        self._keys: dict[Owner, set[Any]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, key: Any, owner: Owner = ("", "")) -> Entry:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                found = (owner, Entry())
                self._entries[key] = found
                self._keys.setdefault(owner, set()).add(key)
                while len(self._entries) > self.capacity:
                    dropped, (dropped_owner, _) = self._entries.popitem(last=False)
                    self._unlist(dropped_owner, dropped)
            else:
                self._entries.move_to_end(key)
            return found[1]

    def forget(self, owner: Owner) -> None:
        """Drop every entry of one canary (it finished or was deleted)."""
        with self._lock:
            for key in self._keys.pop(owner, ()):
                self._entries.pop(key, None)

    def _unlist(self, owner: Owner, key: Any) -> None:
        keys = self._keys.get(owner)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._keys[owner]
