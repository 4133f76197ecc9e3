"""The constants both builds share: hashing, model, limits (mirrors textscore-core's model.rs).

Changing a number here without the same change in workloads/textscore-core breaks parity; the
shared test vectors (workloads/vectors/score-vectors.json) catch it.
"""

from __future__ import annotations

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK64 = (1 << 64) - 1
SEED_UNIGRAM = FNV_OFFSET ^ 1
SEED_BIGRAM = FNV_OFFSET ^ 2
SEED_CHAR = FNV_OFFSET ^ 3
DIM_BITS = 18
DIM = 1 << DIM_BITS
WEIGHT_SEED = 0x7465787473636F72  # "textscor"
GOLDEN = 0x9E3779B97F4A7C15
BIAS = -0.25
MODEL = "textscore-fnv18-v1"

# Request limits, the same for both builds (textscore-core exports the same numbers).
MAX_TEXTS = 64
MAX_TEXT_CHARS = 10_000
MAX_BODY_BYTES = 1 << 20
