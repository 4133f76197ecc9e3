"""Deterministic request bodies for the workload benchmark: batches of realistic-looking texts.

Support-ticket-like sentences from a fixed vocabulary (mostly English, some accented and non-Latin
words, digits and punctuation, so normalisation has work to do), generated from a seed so every
run and both builds see the same bytes.
"""

from __future__ import annotations

import json
import random

_VOCABULARY = (
    "the a to of and in is it for on my order account payment refund delivery late package "
    "support team please help urgent issue error login password reset card charged twice "
    "invoice subscription cancel upgrade plan price discount coupon code shipping address "
    "tracking number damaged broken missing item return exchange warranty service outage "
    "server slow timeout crash update version app mobile browser email phone call chat agent "
    "thanks regards hello hi customer premium business monthly yearly trial free feature "
    "request bug report screenshot attached today yesterday week month since still again "
    "never always cannot won't doesn't isn't can't would could should really very quite "
    "café naïve résumé Zürich São Paulo Straße Ελλάδα Москва 東京 서울 مرحبا "
    "€49.99 $120 #4521 v2.3.1 10:30 2024-05-01 100% 3x"
)
_WORDS = tuple(_VOCABULARY.split())
_ENDINGS = (".", ".", ".", "!", "?", "...", ";")


def sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 16))]
    words[0] = words[0].capitalize()
    if rng.random() < 0.3:
        words.insert(rng.randrange(1, len(words)), ",")
    return " ".join(words).replace(" ,", ",") + rng.choice(_ENDINGS)


def text(rng: random.Random, words: int) -> str:
    parts: list[str] = []
    while sum(len(p.split()) for p in parts) < words:
        parts.append(sentence(rng))
    return " ".join(parts)


def bodies(count: int = 32, batch: int = 8, words: int = 60, seed: int = 2024) -> list[bytes]:
    """``count`` distinct /v1/score bodies, each a batch of ``batch`` texts of about ``words`` words."""
    rng = random.Random(seed)
    return [json.dumps({"texts": [text(rng, words) for _ in range(batch)]}).encode() for _ in range(count)]
