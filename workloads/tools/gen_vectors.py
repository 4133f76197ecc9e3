"""Writes workloads/vectors/score-vectors.json: inputs and the scores both builds must produce.

The expected values come from the Python build (the reference implementation); the file is then
frozen, and tests check both builds against it (scores within 1e-9, exact feature counts and
normalised forms), so a change to either build that alters results fails until the vectors are
regenerated on purpose: ``python workloads/tools/gen_vectors.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from textscore import normalise, pyscore, spec

OUT = Path(__file__).resolve().parents[1] / "vectors" / "score-vectors.json"

CASES: list[tuple[str, str]] = [
    ("ascii sentence", "The quick brown fox jumps over the lazy dog."),
    ("case and punctuation fold away", "THE QUICK, BROWN FOX!!! jumps... over (the) lazy dog?"),
    ("empty text", ""),
    ("only punctuation and spaces", " \t\n,.;:!?()[]{}<>\"'`~@#$%^&*-_=+|\\/ "),
    ("single letter", "a"),
    ("digits and units", "Order 66 shipped 3x 250ml bottles at 10:30 on 2024-02-29"),
    ("german sharp s folds to ss", "Straße STRASSE strasse"),
    ("turkish dotted capital I", "İstanbul ıspanak"),
    ("greek final sigma", "ΟΔΟΣ οδος"),
    ("composed and decomposed accents agree", "café cafe\u0301 naïve nai\u0308ve"),
    ("compatibility forms", "ﬁnance ① ２０２４ ｈｅｌｌｏ ㍿"),
    ("cjk without spaces", "日本語のテキストを分類します。東京都"),
    ("korean hangul", "한국어 텍스트 분류"),
    ("arabic with ligature", "مرحبا بالعالم ﷺ"),
    ("hebrew with points", "שָׁלוֹם עוֹלָם"),
    ("devanagari marks", "नमस्ते दुनिया"),
    ("emoji and zero width joiner", "family 👨\u200d👩\u200d👧 rocket 🚀 flag 🇫🇷"),
    ("astral letters", "𝐀𝐁𝐂 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐐀𐐨"),
    ("private use and unassigned pass through", "\ue000\uf8ff \U000f0000 \u0378\u0379 \U0010ffff"),
    ("control characters separate", "tab\there\x00nul\x1fus\x7fdel\u0085nel"),
    ("long token", "x" * 300),
    ("long text", "Scores are computed per text; batches share nothing. " * 40),
    ("mixed scripts", "Ferro canary: Rust ≥ Python? 速い! быстро! σύντομα!"),
    ("whitespace variants", "a\u00a0b\u2003c\u3000d\u2028e\u2029f"),
    ("combining marks on their own", "\u0301\u0302 x\u0303"),
]


def main() -> int:
    vectors = [
        {
            "name": name,
            "text": text,
            "normalised": normalise.normalise(text),
            "features": len(pyscore.feature_hashes(text)),
            "score": pyscore.score_text(text),
        }
        for name, text in CASES
    ]
    doc = {
        "model": spec.MODEL,
        "tolerance": 1e-9,
        "about": "textscore parity vectors: both builds must match (workloads/tools/gen_vectors.py)",
        "vectors": vectors,
    }
    OUT.write_text(json.dumps(doc, ensure_ascii=True, indent=1) + "\n", encoding="ascii")
    print(f"wrote {OUT} ({len(vectors)} vectors)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
