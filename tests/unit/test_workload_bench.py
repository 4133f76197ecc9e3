"""`ferrocanary bench workload` end to end, shortened: both builds served, the JSON the issue specifies."""

from __future__ import annotations

import argparse
import json

import pytest

from ferrocanary.bench import workload

FIGURES = {
    "p50_ms",
    "p99_ms",
    "p999_ms",
    "rps",
    "cpu_seconds",
    "requests_per_cpu_second",
    "rss_mb",
    "max_rps_at_slo",
}


@pytest.mark.slow  # runs both real builds under load for a few seconds
def test_short_bench_reports_both_builds_and_their_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    workload.add_arguments(parser)
    args = parser.parse_args(
        [
            "--json",
            "--no-build",
            "--rounds",
            "2",
            "--duration",
            "1.5",
            "--search-steps",
            "2",
            "--search-duration",
            "1",
        ]
    )
    assert workload.run(args) == 0
    report = json.loads(capsys.readouterr().out)
    ratios = report["ratios"]
    assert set(ratios) == {"p99", "requests_per_cpu_second", "rss", "max_rps_at_slo"}
    for build in ("python", "rust"):
        figures = report[build]
        assert set(figures) >= FIGURES
        assert figures["errors"] == 0
        assert figures["requests"] > 0
        assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["p999_ms"]
        assert figures["cpu_seconds"] > 0
        assert figures["rss_mb"] > 10
        assert 0 < figures["hot_path_share"] < 1
    python, rust = report["python"], report["rust"]
    assert ratios["p99"] == pytest.approx(rust["p99_ms"] / python["p99_ms"])
    assert ratios["requests_per_cpu_second"] == pytest.approx(
        rust["requests_per_cpu_second"] / python["requests_per_cpu_second"]
    )
    # Same arrivals for both: every request of every round was answered by each build.
    assert python["requests"] == rust["requests"]
    # The point of the workload, with a wide margin: the hot path is most of the Python build's
    # CPU, moving it to Rust shrinks its share, and per CPU-second the Rust build serves several
    # times more. The Python share measures 0.82-0.84 on a quiet machine and fell to 0.77 in a CI
    # run on a busy one (the server's own overhead grows with contention), hence 0.6, not 0.8.
    assert python["hot_path_share"] > 0.6
    assert rust["hot_path_share"] < python["hot_path_share"] / 2
    assert ratios["requests_per_cpu_second"] > 2
    assert ratios["p99"] < 1
