"""The recording format v1: round trips, and malformed input names the block index and field."""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ferrocanary.model import analysis, recording


def _arm(requests: float = 100.0) -> dict[str, Any]:
    return {
        "requests": requests,
        "errors": 1,
        "latency_counts": [10, 80, 9, 1],
        "cpu_seconds": 3.5,
        "memory_bytes": 2.0e8,
        "pods": 2,
        "faults": 0,
    }


def _doc(blocks: int = 2) -> dict[str, Any]:
    return {
        "format": recording.FORMAT,
        "interval_seconds": 60,
        "latency_bucket_bounds": [0.01, 0.02, 0.05],
        "blocks": [
            {
                "start": f"2025-01-01T00:0{i}:00Z",
                "weight": 10,
                "baseline": _arm(),
                "candidate": _arm(12.0),
            }
            for i in range(blocks)
        ],
    }


def test_round_trip_preserves_every_value(tmp_path: Path) -> None:
    doc = _doc()
    doc["blocks"][1]["missing"] = ["cpu"]
    rec = recording.from_dict(doc)
    assert rec.blocks[0].start == datetime(2025, 1, 1, tzinfo=UTC)
    assert rec.blocks[1].missing == ("cpu",)
    assert rec.blocks[0].candidate.requests == 12.0
    assert rec.blocks[0].baseline.latency_counts == (10.0, 80.0, 9.0, 1.0)
    path = tmp_path / "r.json"
    recording.dump(rec, path)
    assert recording.load(path) == rec
    assert json.loads(path.read_text())["blocks"][0]["start"] == "2025-01-01T00:00:00Z"


def test_offsets_are_converted_to_utc() -> None:
    doc = _doc(1)
    doc["blocks"][0]["start"] = "2025-01-01T02:00:00+02:00"
    assert recording.from_dict(doc).blocks[0].start == datetime(2025, 1, 1, tzinfo=UTC)


def _broken(mutate: Any) -> recording.RecordingError:
    doc = copy.deepcopy(_doc())
    mutate(doc)
    with pytest.raises(recording.RecordingError) as info:
        recording.from_dict(doc)
    return info.value


@pytest.mark.parametrize(
    ("mutate", "block", "field"),
    [
        (lambda d: d.update(format="ferrocanary.recording/v0"), None, "format"),
        (lambda d: d.update(latency_bucket_bounds=[0.01, 0.05, 0.02]), None, "latency_bucket_bounds[2]"),
        (lambda d: d.update(latency_bucket_bounds=[]), None, "latency_bucket_bounds"),
        (lambda d: d.update(interval_seconds=0), None, "interval_seconds"),
        (
            lambda d: d["blocks"][1]["candidate"].update(latency_counts=[1, 2, 3]),
            1,
            "candidate.latency_counts",
        ),
        (lambda d: d["blocks"][1]["baseline"].update(requests=-1), 1, "baseline.requests"),
        (lambda d: d["blocks"][0]["candidate"].update(cpu_seconds=math.nan), 0, "candidate.cpu_seconds"),
        (
            lambda d: d["blocks"][1]["candidate"]["latency_counts"].__setitem__(2, -3),
            1,
            "candidate.latency_counts[2]",
        ),
        (lambda d: d["blocks"][1].pop("candidate"), 1, "candidate"),
        (lambda d: d["blocks"][0]["baseline"].pop("faults"), 0, "baseline.faults"),
        (lambda d: d["blocks"][0]["baseline"].update(pods=True), 0, "baseline.pods"),
        (lambda d: d["blocks"][1].update(start="yesterday"), 1, "start"),
        (lambda d: d["blocks"][1].update(start="2025-01-01T00:05:00"), 1, "start"),
        (lambda d: d["blocks"][1].update(start="2024-12-31T00:00:00Z"), 1, "start"),
        (lambda d: d["blocks"][0].update(weight=150), 0, "weight"),
        (lambda d: d["blocks"][0].update(missing=["latncy"]), 0, "missing[0]"),
    ],
)
def test_malformed_input_names_block_and_field(mutate: Any, block: int | None, field: str) -> None:
    error = _broken(mutate)
    assert error.block == block
    assert error.field == field
    if block is not None:
        assert str(error).startswith(f"block {block}: {field}")


def test_invalid_json_file_is_a_recording_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(recording.RecordingError, match="not valid JSON"):
        recording.load(path)


def test_empty_block_list_is_valid() -> None:
    doc = _doc(0)
    rec = recording.from_dict(doc)
    assert rec.blocks == ()
    assert recording.from_dict(json.loads(recording.dumps(rec))) == rec


def test_files_have_one_block_per_line() -> None:
    text = recording.dumps(recording.from_dict(_doc(3)))
    assert len(text.splitlines()) == 5
    assert json.loads(text)["blocks"][2]["candidate"]["requests"] == 12


def test_json_schema_documents_what_the_loader_writes() -> None:
    """docs/recording.schema.json must not drift from the format: same tag, same required keys, same
    signal names."""
    schema = json.loads((Path(__file__).resolve().parents[2] / "docs" / "recording.schema.json").read_text())
    written = recording.to_dict(recording.from_dict(_doc(1)))
    assert schema["properties"]["format"]["const"] == recording.FORMAT
    assert set(schema["required"]) == set(written)
    block = schema["$defs"]["block"]
    assert set(block["required"]) == set(written["blocks"][0]) - {"missing"}
    assert set(schema["$defs"]["arm"]["required"]) == set(written["blocks"][0]["baseline"])
    assert tuple(block["properties"]["missing"]["items"]["enum"]) == recording.SIGNALS


def test_a_recording_carries_the_analysis_settings_it_was_judged_with() -> None:
    spec = {"interval": "10s", "warmup": "20s", "kpis": [{"name": "p99-latency", "type": "latencyQuantile",
                                                          "quantile": 0.99, "target": 0.5}]}  # fmt: skip
    rec = recording.Recording(10, (0.001, 0.002), (), analysis=spec)
    again = recording.from_dict(json.loads(recording.dumps(rec)))
    assert again.analysis == spec
    settings = analysis.settings_from_spec(again.analysis)
    assert settings.warmup_seconds == 20
    assert [k.target for k in settings.kpis] == [0.5]
    assert recording.from_dict(recording.to_dict(recording.Recording(10, (0.001,), ()))).analysis is None
