"""The linear model's weights, generated from a seed (splitmix64), bit-identical in both builds.

Generating 2**18 weights takes a fraction of a second once per process; shipping them would add a
2 MiB binary file to the repository for no gain.
"""

from __future__ import annotations

import functools

from textscore import spec


def splitmix64(seed: int, i: int) -> int:
    """The splitmix64 output for the i-th state after ``seed``."""
    mask = spec.MASK64
    z = (seed + (i + 1) * spec.GOLDEN) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


@functools.cache
def weights() -> list[float]:
    """Weights uniform in [-1, 1): ((top 24 bits) * 2**-24 - 0.5) * 2, exactly as in Rust.

    24 significant bits: the Rust build stores them as f32 without rounding; sums are in f64.
    """
    mask, golden, seed = spec.MASK64, spec.GOLDEN, spec.WEIGHT_SEED
    scale = 2.0**-24
    out = []
    for i in range(spec.DIM):
        # splitmix64 inlined: this loop runs 262,144 times at start-up.
        z = (seed + (i + 1) * golden) & mask
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        z ^= z >> 31
        out.append(((z >> 40) * scale - 0.5) * 2.0)
    return out
