"""Parity of textscore's two builds: shared vectors, a differential fuzz, every code point.

The Rust build (textscore_native) must be installed: `make setup` or `workloads/build.sh .venv/bin/python`.
"""

from __future__ import annotations

import importlib.util
import json
import math
import unicodedata
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from textscore import normalise, pyscore, spec

REPO = Path(__file__).resolve().parents[2]
VECTORS = json.loads((REPO / "workloads" / "vectors" / "score-vectors.json").read_text())
TOLERANCE = 1e-9  # the bound; on one machine the builds agree bit for bit


def _native() -> ModuleType:
    try:
        import textscore_native  # noqa: PLC0415
    except ImportError:
        pytest.fail("textscore_native is not installed: run workloads/build.sh .venv/bin/python")
    return textscore_native


native = _native()


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_both_builds_match_the_shared_vectors(vector: dict[str, object]) -> None:
    text = str(vector["text"])
    for build, score, normalised, features in (
        ("python", pyscore.score_text(text), normalise.normalise(text), len(pyscore.feature_hashes(text))),
        ("rust", native.score_batch([text])[0], native.normalise(text), len(native.feature_hashes(text))),
    ):
        assert abs(score - float(vector["score"])) <= TOLERANCE, build  # type: ignore[arg-type]
        assert normalised == vector["normalised"], build
        assert features == vector["features"], build


def test_vectors_cover_what_normalisation_is_for() -> None:
    by_name = {v["name"]: v for v in VECTORS["vectors"]}
    assert by_name["ascii sentence"]["score"] == by_name["case and punctuation fold away"]["score"]
    assert by_name["empty text"]["score"] == pyscore.sigmoid(spec.BIAS)
    assert len(VECTORS["vectors"]) >= 20


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(max_size=120), min_size=1, max_size=6))
def test_differential_random_unicode(texts: list[str]) -> None:
    """300 random batches of arbitrary Unicode (hypothesis favours odd code points and edges)."""
    rust = native.score_batch(texts)
    python = pyscore.score_batch(texts)
    assert len(rust) == len(python)
    for text, r, p in zip(texts, rust, python, strict=True):
        assert abs(r - p) <= TOLERANCE, text
        assert 0.0 < r < 1.0
        assert native.feature_hashes(text) == pyscore.feature_hashes(text), text


def test_every_code_point_normalises_identically() -> None:
    every = "".join(chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF)
    assert native.normalise(every) == normalise.normalise(every)


def test_the_table_leaves_only_spaces_as_whitespace() -> None:
    # Why the Python build may split with str.split(): no other whitespace survives the table.
    table = normalise.table()
    for cp in range(0x110000):
        ch = chr(cp)
        if ch.isspace() and ch != " ":
            assert table.get(cp) == " ", hex(cp)
    assert all(not (ch.isspace() and ch != " ") for out in table.values() for ch in out)


@pytest.mark.skipif(
    unicodedata.unidata_version != "14.0.0", reason="the table is generated from Unicode 14.0.0"
)
def test_the_shipped_table_is_what_the_generator_writes() -> None:
    spec_ = importlib.util.spec_from_file_location("gen_normtable", REPO / "workloads/tools/gen_normtable.py")
    assert spec_ is not None
    assert spec_.loader is not None
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    shipped = (REPO / "workloads/textscore/textscore/data/normtable.txt").read_text(encoding="ascii")
    assert module.render() == shipped


def test_builds_share_limits_and_report_a_release_build() -> None:
    assert (native.MAX_TEXTS, native.MAX_TEXT_CHARS) == (spec.MAX_TEXTS, spec.MAX_TEXT_CHARS)
    info = native.build_info()
    assert info["profile"] == "release"
    assert info["crate_version"] == "0.1.0"
    assert "Unicode 14.0.0" in info["unicode_table"]


def test_native_refuses_wrong_types_without_crashing() -> None:
    with pytest.raises(TypeError):
        native.score_batch("not a list")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        native.score_batch([1, 2])  # type: ignore[list-item]
    with pytest.raises(UnicodeEncodeError):
        native.score_batch(["lone \ud800 surrogate"])
    assert native.score_batch([]) == []
    assert native.panics() == 0


def test_large_inputs_score_finite_probabilities() -> None:
    texts = ["x" * spec.MAX_TEXT_CHARS, "ab " * (spec.MAX_TEXT_CHARS // 3), "\U0010ffff" * 5000]
    for r, p in zip(native.score_batch(texts), pyscore.score_batch(texts), strict=True):
        assert math.isfinite(r)
        assert abs(r - p) <= TOLERANCE
