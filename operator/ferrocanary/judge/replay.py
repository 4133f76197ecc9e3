"""Replay a recording as the controller would: one look after each block, stop at the first terminal one."""

from __future__ import annotations

from ferrocanary.judge import blocks, looks, verdict
from ferrocanary.model import recording
from ferrocanary.model.analysis import AnalysisSettings
from ferrocanary.model.decisions import Judgement


def replay(rec: recording.Recording, settings: AnalysisSettings) -> tuple[Judgement, int | None]:
    """The first terminal judgement and its 0-based block index; without one, the last look and None."""
    data = blocks.from_recording(rec)
    table = looks.compute(data, settings)
    decided = table.first_terminal()
    at = decided if decided is not None else data.n_blocks - 1
    return verdict.judgement_at(data, table, settings, at), decided
