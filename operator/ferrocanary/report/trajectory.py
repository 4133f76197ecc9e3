"""What the judge said at every look: one Judgement per block, up to the decision (for the plots)."""

from __future__ import annotations

from ferrocanary.judge import blocks, looks, verdict
from ferrocanary.model import analysis, decisions, recording


def trajectory(
    rec: recording.Recording, settings: analysis.AnalysisSettings
) -> tuple[list[decisions.Judgement], int | None]:
    """The judgement after each block, stopping at the first terminal one, and that block's index."""
    if not rec.blocks:
        return [], None
    data = blocks.from_recording(rec)
    table = looks.compute(data, settings)
    decided = table.first_terminal()
    last = decided if decided is not None else data.n_blocks - 1
    return [verdict.judgement_at(data, table, settings, j) for j in range(last + 1)], decided
