"""The judge's view of a recording: numpy arrays per arm and per block, plus which blocks are usable.

Everything downstream works on these arrays (the benchmark builds them directly, without a
Recording). Usability is causal: whether block j is used depends only on blocks 0..j, so the
statistics of every look can be computed from prefixes of the same arrays.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ferrocanary.model import recording

Float = NDArray[np.float64]
Bool = NDArray[np.bool_]

SIGNALS = recording.SIGNALS


@dataclass(frozen=True)
class Arm:
    """One arm's signals, one entry per block (counts (J, K) per latency bucket, not cumulative)."""

    requests: Float
    errors: Float
    counts: Float
    cpu: Float
    memory: Float
    pods: Float
    faults: Float


@dataclass(frozen=True)
class BlockData:
    """All blocks of both arms; ``missing`` is (J, len(SIGNALS)) in SIGNALS order."""

    interval: float
    bounds: Float  # finite bucket upper bounds (K-1,), seconds
    start: Float  # block start, seconds since the epoch
    weight: Float  # candidate's configured traffic percent
    baseline: Arm
    candidate: Arm
    missing: Bool

    @property
    def n_blocks(self) -> int:
        return int(self.start.shape[0])

    def lacks(self, *signals: str) -> Bool:
        """Per block: True where any of the named signals has no data (explicitly, or no traffic at all)."""
        columns = [SIGNALS.index(s) for s in signals]
        lacking = self.missing[:, columns].any(axis=1)
        no_traffic = (self.baseline.requests + self.candidate.requests) <= 0
        return np.asarray(lacking | no_traffic, dtype=np.bool_)

    def prefix(self, n: int) -> BlockData:
        """The first ``n`` blocks (what the controller had seen after block n-1)."""

        def cut(arm: Arm) -> Arm:
            return Arm(
                *(
                    getattr(arm, f)[:n]
                    for f in ("requests", "errors", "counts", "cpu", "memory", "pods", "faults")
                )
            )

        return BlockData(
            self.interval,
            self.bounds,
            self.start[:n],
            self.weight[:n],
            cut(self.baseline),
            cut(self.candidate),
            self.missing[:n],
        )

    def any_missing(self) -> Bool:
        """Per block: True when the block is stale or incomplete (the judge waits)."""
        return self.lacks(*SIGNALS)


def _arm(arms: list[recording.ArmBlock], n_buckets: int) -> Arm:
    def column(name: str) -> Float:
        return np.fromiter((getattr(a, name) for a in arms), dtype=np.float64, count=len(arms))

    # fromiter over one flat stream: np.array on a list of tuples inspects every element for its
    # shape first, which was most of a look's judge time at 720 blocks once only one look is computed.
    flat = itertools.chain.from_iterable(a.latency_counts for a in arms)
    counts = np.fromiter(flat, dtype=np.float64, count=len(arms) * n_buckets).reshape(len(arms), n_buckets)
    return Arm(
        requests=column("requests"),
        errors=column("errors"),
        counts=counts,
        cpu=column("cpu_seconds"),
        memory=column("memory_bytes"),
        pods=column("pods"),
        faults=column("faults"),
    )


def from_recording(rec: recording.Recording) -> BlockData:
    """Arrays from a validated recording."""
    n_buckets = len(rec.latency_bucket_bounds) + 1
    missing = np.zeros((len(rec.blocks), len(SIGNALS)), dtype=np.bool_)
    for j, block in enumerate(rec.blocks):
        for signal in block.missing:
            missing[j, SIGNALS.index(signal)] = True
    return BlockData(
        interval=rec.interval_seconds,
        bounds=np.array(rec.latency_bucket_bounds, dtype=np.float64),
        start=np.array([b.start.timestamp() for b in rec.blocks], dtype=np.float64),
        weight=np.array([b.weight for b in rec.blocks], dtype=np.float64),
        baseline=_arm([b.baseline for b in rec.blocks], n_buckets),
        candidate=_arm([b.candidate for b in rec.blocks], n_buckets),
        missing=missing,
    )


def warm(data: BlockData, warmup_seconds: float) -> Bool:
    """Per block: True while the arms are still warming up after the start or a traffic weight change.

    The caches, connection pools and autoscalers of both builds settle after a step; latency and CPU
    measured before that belong to the transition, not to the build.
    """
    n = data.n_blocks
    if n == 0:
        return np.zeros(0, dtype=np.bool_)
    changed = np.ones(n, dtype=np.bool_)
    changed[1:] = data.weight[1:] != data.weight[:-1]
    index = np.where(changed, np.arange(n), 0)
    last_change = np.maximum.accumulate(index)
    since = data.start - data.start[last_change]
    return np.asarray(since < warmup_seconds - 1e-9, dtype=np.bool_)


def elapsed(data: BlockData) -> Float:
    """Per block: seconds from the start of the first block to the end of this one."""
    if data.n_blocks == 0:
        return np.zeros(0)
    return np.asarray(data.start - data.start[0] + data.interval, dtype=np.float64)


def missing_run(data: BlockData) -> NDArray[np.int64]:
    """Per block: how many blocks in a row, ending here, had missing data (0 when this one is complete)."""
    missing = data.any_missing()
    run = np.zeros(missing.shape[0], dtype=np.int64)
    count = 0
    for j, flag in enumerate(missing):
        count = count + 1 if flag else 0
        run[j] = count
    return run
