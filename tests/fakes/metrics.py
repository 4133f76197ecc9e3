"""A fake of the ``metrics.protocol.MetricsSource`` Protocol for unit tests: each block's expected
signals computed from two arm models (tests/support/arms.py) and the weight in effect at the block.

tests/integration runs the real Prometheus source against a live exporter instead.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from ferrocanary.metrics import protocol
from ferrocanary.model import recording
from tests.support import arms


class ModelSource:
    """Blocks from two arm models at ``rps`` requests per second, split by the window's weights."""

    def __init__(self, baseline: arms.ArmModel, candidate: arms.ArmModel, rps: float = 400.0) -> None:
        self.baseline, self.candidate, self.rps = baseline, candidate, rps
        self.fault_from: datetime | None = None
        self.down = False

    def fetch(self, window: protocol.Window) -> recording.Recording:
        if self.down:
            raise protocol.MetricsUnavailableError(
                "Prometheus at http://127.0.0.1:9 unreachable: ConnectionError"
            )
        interval = window.interval_seconds
        blocks = []
        for start in window.block_starts():
            weight = window.weight_at(start)
            total = self.rps * interval
            faults = 1.0 if self.fault_from is not None and start >= self.fault_from else 0.0
            blocks.append(
                recording.Block(
                    start=start,
                    weight=weight,
                    baseline=self.baseline.block(total * (100 - weight) / 100, interval),
                    candidate=self.candidate.block(total * weight / 100, interval, faults=faults),
                )
            )
        return recording.Recording(interval, arms.BOUNDS, tuple(blocks))


class StraySource(ModelSource):
    """Like ModelSource, but the traffic really is at ``stray`` percent from ``stray_from`` on until the
    route is put back: the split the arms get is the time-weighted truth, not the label."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stray: tuple[datetime, datetime, float] | None = None

    def fetch(self, window: protocol.Window) -> recording.Recording:
        rec = super().fetch(window)
        if self.stray is None:
            return rec
        begin, end, stray = self.stray
        interval = window.interval_seconds
        blocks = []
        for block in rec.blocks:
            true_start = window.weight_at(block.start)
            stop = block.start + timedelta(seconds=interval)
            overlap = max(0.0, (min(stop, end) - max(block.start, begin)).total_seconds())
            weight = (true_start * (interval - overlap) + stray * overlap) / interval
            total = self.rps * interval
            blocks.append(
                dataclasses.replace(
                    block,
                    baseline=self.baseline.block(total * (100 - weight) / 100, interval),
                    candidate=self.candidate.block(total * weight / 100, interval),
                )
            )
        return recording.Recording(interval, arms.BOUNDS, tuple(blocks))
