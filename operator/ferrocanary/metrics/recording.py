"""Replay a recorded canary as a ``MetricsSource``: the same blocks the judge saw, on a new clock.

``origin`` shifts the recording so its first block starts there (block i then starts at
``origin + i * interval``); ``fetch`` returns the blocks inside the window, so an operator ticking
over a replay sees blocks appear one interval at a time, exactly as from Prometheus. By default the
recorded weights are kept (they are part of the evidence); ``relabel_weights`` takes them from the
window's steps instead, for a replay driven by a live state machine.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from ferrocanary.metrics import protocol
from ferrocanary.model import recording


class RecordingSource:
    """``MetricsSource`` over a ``recording.Recording``."""

    def __init__(
        self, rec: recording.Recording, *, origin: datetime | None = None, relabel_weights: bool = False
    ) -> None:
        if origin is not None and rec.blocks:
            shift = origin - rec.blocks[0].start
            rec = dataclasses.replace(
                rec, blocks=tuple(dataclasses.replace(b, start=b.start + shift) for b in rec.blocks)
            )
        self._rec = rec
        self._relabel = relabel_weights

    def fetch(self, window: protocol.Window) -> recording.Recording:
        if abs(window.interval_seconds - self._rec.interval_seconds) > 1e-9:
            raise protocol.MetricsUnavailableError(
                f"the recording has {self._rec.interval_seconds:g}s blocks; "
                f"the analysis asks for {window.interval_seconds:g}s"
            )
        step = timedelta(seconds=self._rec.interval_seconds)
        blocks = tuple(
            dataclasses.replace(b, weight=window.block_weight(b.start)) if self._relabel else b
            for b in self._rec.blocks
            if b.start >= window.start and b.start + step <= window.end
        )
        return dataclasses.replace(self._rec, blocks=blocks)
