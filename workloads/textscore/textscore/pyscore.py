"""The Python build's hot path: hash n-gram features of each text and apply the linear model.

This is the code the Rust build replaces (workloads/textscore-core/src/model.rs holds the same
specification). It is written the way a careful Python team would write it (locals bound, the
running hash shared by the 3-, 4- and 5-grams of one start), not slowed down on purpose: the
point of the benchmark is the honest gap between good Python and Rust.

Per token, in order: the unigram, the bigram with the previous token, then the char n-grams of
" token " for every start j, lengths 3, 4, 5. A feature with 64-bit hash h adds +w[h mod 2**18]
(bit 63 clear) or -w[h mod 2**18] (bit 63 set); the sum runs in feature order, so both builds
add the same floats in the same order and agree to the last bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from textscore import normalise, spec, weights


def sigmoid(z: float) -> float:
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _features(text: str, emit: Callable[[int], None]) -> None:
    """Calls ``emit`` with every feature hash of ``text`` in summation order (the reference)."""
    prime, mask = spec.FNV_PRIME, spec.MASK64
    previous: list[int] | None = None
    for token in normalise.tokens(text):
        cps = [ord(ch) for ch in token]
        h = spec.SEED_UNIGRAM
        for c in cps:
            h = ((h ^ c) * prime) & mask
        emit(h)
        if previous is not None:
            h = spec.SEED_BIGRAM
            for c in previous:
                h = ((h ^ c) * prime) & mask
            for c in [32, *cps]:
                h = ((h ^ c) * prime) & mask
            emit(h)
        previous = cps
        padded = [32, *cps, 32]
        for start in range(len(padded) - 2):
            h = spec.SEED_CHAR
            for offset, c in enumerate(padded[start : start + 5]):
                h = ((h ^ c) * prime) & mask
                if offset >= 2:
                    emit(h)


def feature_hashes(text: str) -> list[int]:
    """The feature hashes of a text in summation order (for parity tests)."""
    out: list[int] = []
    _features(text, out.append)
    return out


def score_text(text: str) -> float:
    """Scores one text. The loops of ``_features`` are inlined: this is the request's hot path.

    A feature with bit 63 set adds ``-x`` rather than subtracting ``x``: IEEE 754 defines
    ``a - b`` as ``a + (-b)``, so the sums are bit-identical to the Rust build's, and the
    conditional expression keeps the three sign tests out of the branch count without a
    function call per feature.
    """
    prime, mask = spec.FNV_PRIME, spec.MASK64
    seed_uni, seed_bi, seed_char = spec.SEED_UNIGRAM, spec.SEED_BIGRAM, spec.SEED_CHAR
    dim_mask = spec.DIM - 1
    w = weights.weights()
    acc = 0.0
    n = 0
    previous: list[int] | None = None
    for token in normalise.tokens(text):
        cps = [ord(ch) for ch in token]
        h = seed_uni
        for c in cps:
            h = ((h ^ c) * prime) & mask
        x = w[h & dim_mask]
        acc += -x if h >> 63 else x
        n += 1
        if previous is not None:
            h = seed_bi
            for c in previous:
                h = ((h ^ c) * prime) & mask
            h = ((h ^ 32) * prime) & mask
            for c in cps:
                h = ((h ^ c) * prime) & mask
            x = w[h & dim_mask]
            acc += -x if h >> 63 else x
            n += 1
        previous = cps
        padded = [32, *cps, 32]
        for start in range(len(padded) - 2):
            h = seed_char
            for offset, c in enumerate(padded[start : start + 5]):
                h = ((h ^ c) * prime) & mask
                if offset >= 2:
                    x = w[h & dim_mask]
                    acc += -x if h >> 63 else x
                    n += 1
    z = spec.BIAS + acc / math.sqrt(n) if n else spec.BIAS
    return sigmoid(z)


def score_batch(texts: list[str]) -> list[float]:
    return [score_text(text) for text in texts]
