"""`ferrocanary analyze`: replay of the example recordings, the JSON shape, bad input (exit 2, naming
the block and field), and settings taken from a RustCanary manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ferrocanary.cli import main

RECORDINGS = Path(__file__).resolve().parents[1] / "data" / "recordings"


def _analyze(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main.main(["analyze", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, err = _analyze(capsys, "--json", *args)
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("name", "decision", "block"),
    [
        ("promote", "Promote", 25),
        ("rollback", "Rollback", 25),
        ("coarse-buckets", "Invalid", 2),
        ("memory-fault", "Rollback", 12),
        ("sample-ratio-mismatch", "Invalid", 2),  # checked once the 2-minute warm-up is over,
        ("missing-data", "Hold", None),
    ],
)
def test_example_recordings(
    capsys: pytest.CaptureFixture[str], name: str, decision: str, block: int | None
) -> None:
    result = _json(capsys, "--recording", str(RECORDINGS / f"{name}.json"))
    assert (result["decision"], result["decided_at_block"]) == (decision, block)
    assert result["reason"]


def test_json_shape_matches_the_issue(capsys: pytest.CaptureFixture[str]) -> None:
    result = _json(capsys, "--recording", str(RECORDINGS / "promote.json"))
    assert {"decision", "reason", "decided_at_block", "kpis"} <= set(result)
    names = [k["name"] for k in result["kpis"]]
    assert names == ["p99-latency", "throughput-per-cpu", "cost-per-request", "memory-faults"]
    p99 = result["kpis"][0]
    assert {"name", "estimate", "lower", "upper", "target", "direction", "decision", "eta50_seconds",
            "eta80_seconds"} <= set(p99)  # fmt: skip
    assert p99["lower"] < p99["estimate"] < p99["upper"] < p99["target"] == 0.6
    assert p99["direction"] == "lower"
    assert result["kpis"][1]["direction"] == "higher"


def test_human_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _analyze(capsys, "--recording", str(RECORDINGS / "rollback.json"))
    assert code == 0
    assert "Rollback" in out
    assert "p99-latency" in out
    assert "Miss" in out


def _write(tmp_path: Path, data: Any) -> str:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="other/v9"), "format"),
        (lambda d: d["latency_bucket_bounds"].reverse(), "latency_bucket_bounds[1]"),
        (lambda d: d["blocks"][3]["candidate"]["latency_counts"].pop(), "block 3: candidate.latency_counts"),
        (lambda d: d["blocks"][2]["baseline"].update(cpu_seconds=-1), "block 2: baseline.cpu_seconds"),
        (lambda d: d["blocks"][4].pop("baseline"), "block 4: baseline"),
    ],
)
def test_malformed_recordings_exit_2_naming_block_and_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mutate: Any, message: str
) -> None:
    data = json.loads((RECORDINGS / "coarse-buckets.json").read_text())
    mutate(data)
    code, out, err = _analyze(capsys, "--recording", _write(tmp_path, data))
    assert code == 2
    assert message in err
    assert out == ""


def test_nan_in_a_recording_is_rejected(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = (RECORDINGS / "coarse-buckets.json").read_text().replace('"faults": 0', '"faults": NaN', 1)
    path = tmp_path / "nan.json"
    path.write_text(text)
    code, _, err = _analyze(capsys, "--recording", str(path))
    assert code == 2
    assert "block 0: baseline.faults" in err


def test_missing_file_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _analyze(capsys, "--recording", str(tmp_path / "nope.json"))
    assert code == 2
    assert "nope.json" in err


MANIFEST = """\
apiVersion: ferrocanary.io/v1alpha1
kind: RustCanary
metadata: {name: textscore}
spec:
  analysis:
    confidence: 0.95
    kpis:
      - {name: p99-latency, type: latencyQuantile, quantile: 0.99, target: %s}
      - {name: throughput-per-cpu, type: throughputPerCpu, target: 1.5}
"""


def test_canary_manifest_sets_the_targets(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    strict = tmp_path / "strict.yaml"
    strict.write_text("---\nkind: ConfigMap\n---\n" + MANIFEST % "0.25")  # the RustCanary need not come first
    result = _json(capsys, "--recording", str(RECORDINGS / "promote.json"), "--canary", str(strict))
    assert [k["name"] for k in result["kpis"]] == ["p99-latency", "throughput-per-cpu"]
    assert result["kpis"][0]["target"] == 0.25
    assert result["decision"] != "Promote"  # the recording's p99 ratio (~0.4) is not below 0.25


def test_the_shipped_example_manifest_is_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    example = Path(__file__).resolve().parents[2] / "crds" / "examples" / "analysis-only.yaml"
    result = _json(capsys, "--recording", str(RECORDINGS / "promote.json"), "--canary", str(example))
    assert result["decision"] == "Promote"


def test_bad_manifest_exit_2_naming_the_field(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MANIFEST % "-1")
    code, _, err = _analyze(capsys, "--recording", str(RECORDINGS / "promote.json"), "--canary", str(bad))
    assert code == 2
    assert "spec.analysis.kpis[0].target" in err
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: RustCanary\nspec: [unclosed")
    code, _, err = _analyze(capsys, "--recording", str(RECORDINGS / "promote.json"), "--canary", str(broken))
    assert code == 2
    assert "YAML" in err


def test_kpi_names_print_literally_in_the_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Names are text from a manifest, not markup: a stray closing tag or an escape sequence is shown."""
    hostile = MANIFEST.replace("name: p99-latency", 'name: "p99-[/x]"').replace(
        "name: throughput-per-cpu", 'name: "tput-\\e[31m"'
    )
    manifest = tmp_path / "hostile.yaml"
    manifest.write_text(hostile % "0.6")
    code, out, err = _analyze(
        capsys, "--recording", str(RECORDINGS / "promote.json"), "--canary", str(manifest)
    )
    assert code == 0, err
    assert "p99-[/x]" in out
    assert "tput-\\x1b[31m" in out
    assert "\x1b" not in out
