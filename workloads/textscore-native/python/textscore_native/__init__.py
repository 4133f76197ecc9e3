"""textscore_native: the Rust build of textscore's hot path (the private module ``_native``).

The public surface is re-exported here; textscore's engine module is its only intended user.
"""

from textscore_native._native import (
    MAX_TEXT_CHARS,
    MAX_TEXTS,
    NativePanicError,
    build_info,
    feature_hashes,
    normalise,
    panics,
    score_batch,
    set_fault,
)

__all__ = [
    "MAX_TEXTS",
    "MAX_TEXT_CHARS",
    "NativePanicError",
    "build_info",
    "feature_hashes",
    "normalise",
    "panics",
    "score_batch",
    "set_fault",
]
