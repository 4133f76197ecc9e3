"""Simulated runs as recordings (the JSON format v1): example files for tests and docs, timing inputs."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

import numpy as np

from ferrocanary.bench import sim
from ferrocanary.model import recording


def from_batch(
    batch: sim.Batch,
    run: int,
    *,
    blocks: int | None = None,
    missing: dict[int, tuple[str, ...]] | None = None,
) -> recording.Recording:
    """Run ``run`` of ``batch`` as a Recording, optionally cut to its first ``blocks`` blocks and with
    signals marked missing per block index."""
    n = batch.weight.shape[0] if blocks is None else blocks
    data = batch.block_data(run)
    missing = missing or {}

    def arm(a: int, j: int) -> recording.ArmBlock:
        return recording.ArmBlock(
            requests=float(batch.requests[run, j, a]),
            errors=float(batch.errors[run, j, a]),
            latency_counts=tuple(float(c) for c in batch.counts[run, j, a]),
            cpu_seconds=round(float(batch.cpu[run, j, a]), 4),
            memory_bytes=float(round(float(batch.memory[run, j, a]))),
            pods=round(float(batch.pods[run, j, a]), 3),
            faults=float(batch.faults[run, j, a]),
        )

    out = tuple(
        recording.Block(
            start=datetime.fromtimestamp(float(data.start[j]), UTC),
            weight=float(batch.weight[j]),
            baseline=arm(0, j),
            candidate=arm(1, j),
            missing=missing.get(j, ()),
        )
        for j in range(n)
    )
    return recording.Recording(batch.scenario.interval, tuple(float(b) for b in batch.bounds), out)


# name -> (scenario, seed, blocks kept, missing signals per block index, block with one candidate fault).
EXAMPLES: dict[str, tuple[sim.Scenario, int, int, dict[int, tuple[str, ...]], int | None]] = {
    "promote": (sim.Scenario(0.40, 100.0), 1, 30, {}, None),
    "rollback": (sim.Scenario(1.20, 100.0), 2, 30, {}, None),
    "coarse-buckets": (sim.Scenario(0.40, 100.0, buckets="default"), 3, 8, {}, None),
    "missing-data": (
        sim.Scenario(0.40, 20.0),
        4,
        9,
        {6: ("latency",), 7: ("latency", "cpu"), 8: ("cpu",)},
        None,
    ),
    "memory-fault": (sim.Scenario(0.40, 100.0), 5, 14, {}, 12),
    "sample-ratio-mismatch": (sim.Scenario(0.40, 100.0, traffic_skew=0.6), 6, 12, {}, None),
}

# A bucket range narrower than the benchmark's (2 ms .. 2.5 s at factor 1.1) keeps the files small.
EXAMPLE_BOUNDS: sim.Float = np.array([float(f"{b:.4g}") for b in 0.002 * 1.1 ** np.arange(75)])


def write_examples(directory: str) -> list[str]:
    """Write the example recordings (fixed seeds) into ``directory``; returns the paths."""
    paths = []
    for name, (scenario, seed, n_blocks, missing, fault_block) in EXAMPLES.items():
        bounds = EXAMPLE_BOUNDS if scenario.buckets == "exp1.1" else None
        batch = sim.simulate(scenario, 1, np.random.default_rng(seed), bounds)
        if fault_block is not None:
            batch.faults[0, fault_block, 1] = 1.0  # one OOMKill of the candidate
        path = os.path.join(directory, f"{name}.json")
        recording.dump(from_batch(batch, 0, blocks=n_blocks, missing=missing), path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_examples(sys.argv[1] if len(sys.argv) > 1 else "tests/data/recordings"):
        print(written)
