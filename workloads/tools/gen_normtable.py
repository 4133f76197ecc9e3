"""Generates the normalisation table both builds of textscore load (textscore/data/normtable.txt).

Why a shipped table instead of each language's Unicode library: CPython's ``unicodedata`` and the
Rust crates follow different Unicode versions (3.11 has 14.0, 3.13 has 15.1, Rust crates move on
their own), and differ on what "alphanumeric" means. A table generated once from one version, and
loaded verbatim by both builds, makes the two builds agree on every code point forever.

Definition, per code point c (surrogates excluded): a *word* code point has a general category
L*, N* or M*, or is unassigned (Cn) or private use (Co). Non-word code points map to one space.
A word code point maps to NFKD(casefold(NFKD(c))), with every non-word code point of that result
replaced by a space. Only code points whose mapping differs from themselves are written.

Format: one mapping per line, ``SRC OUT`` with hex code points; ``OUT`` is one or more hex code
points joined by ``+``; ``SRC`` may be a range ``LO..HI`` when every code point in it maps to the
same OUT. Lines starting with ``#`` are comments.

Run with CPython 3.11 (Unicode 14.0.0): ``python workloads/tools/gen_normtable.py``.
"""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path

UNICODE_VERSION = "14.0.0"
OUT = Path(__file__).resolve().parents[1] / "textscore" / "textscore" / "data" / "normtable.txt"


def is_word(ch: str) -> bool:
    category = unicodedata.category(ch)
    return category[0] in "LNM" or category in ("Cn", "Co")


def mapping(cp: int) -> str:
    ch = chr(cp)
    if not is_word(ch):
        return " "
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", ch).casefold())
    return "".join(x if is_word(x) else " " for x in folded)


def render() -> str:
    """The table file's text (needs Unicode 14.0.0: see main)."""
    entries = [
        (cp, out) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF and (out := mapping(cp)) != chr(cp)
    ]
    lines = [
        f"# textscore normalisation table, Unicode {UNICODE_VERSION}; by workloads/tools/gen_normtable.py",
        f"# {len(entries)} code points",
    ]
    i = 0
    while i < len(entries):
        lo, out = entries[i]
        j = i
        while j + 1 < len(entries) and entries[j + 1] == (entries[j][0] + 1, out):
            j += 1
        src = f"{lo:04X}" if j == i else f"{lo:04X}..{entries[j][0]:04X}"
        lines.append(f"{src} {'+'.join(f'{ord(x):04X}' for x in out)}")
        i = j + 1
    return "\n".join(lines) + "\n"


def main() -> int:
    if unicodedata.unidata_version != UNICODE_VERSION:
        print(f"need Unicode {UNICODE_VERSION} (CPython 3.11), have {unicodedata.unidata_version}")
        return 1
    text = render()
    OUT.write_text(text, encoding="ascii")
    print(f"wrote {OUT} ({text.count(chr(10)) - 2} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
