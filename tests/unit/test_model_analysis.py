"""Analysis settings from a RustCanary's spec.analysis: defaults, durations, and errors naming the field."""

from __future__ import annotations

import pytest

from ferrocanary.model import analysis
from ferrocanary.model.analysis import Direction, GuardKind, KpiKind


def test_defaults_are_the_architecture_kpi_table() -> None:
    settings = analysis.settings_from_spec(None)
    table = {k.name: (k.kind, k.target, k.direction) for k in settings.kpis}
    assert table == {
        "p99-latency": (KpiKind.LATENCY_QUANTILE, 0.60, Direction.LOWER),
        "throughput-per-cpu": (KpiKind.THROUGHPUT_PER_CPU, 1.50, Direction.HIGHER),
        "cost-per-request": (KpiKind.COST_PER_REQUEST, 0.70, Direction.LOWER),
        "memory-faults": (KpiKind.MEMORY_FAULTS, 0.0, Direction.LOWER),
    }
    assert [g.name for g in settings.guards] == ["error-rate", "p50-latency"]
    assert settings.kpis[0].quantile == 0.99
    assert settings.confidence == 0.95
    assert settings.interval_seconds == 60
    assert analysis.settings_from_spec({}) == settings


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("1m", 60),
        ("2h", 7200),
        ("1h30m", 5400),
        ("250ms", 0.25),
        (45, 45),
        ("1.5h", 5400),
        ("30", 30),
    ],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert analysis.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "ten minutes", "1x", "-5s", "1h 30m", "m"])
def test_parse_duration_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match=r"spec\.analysis\.interval"):
        analysis.parse_duration(text, "spec.analysis.interval")


def test_spec_overrides() -> None:
    settings = analysis.settings_from_spec(
        {
            "interval": "30s",
            "warmup": "1m",
            "maxDuration": "1h",
            "confidence": 0.9,
            "kpis": [
                {"name": "p95-latency", "type": "latencyQuantile", "target": 0.5},
                {"name": "tput", "type": "throughputPerCpu", "target": 2},
            ],
            "guards": [{"name": "errors", "type": "errorRate", "maxRatio": 1.2}],
            "pricing": {"cpuHour": 0.05, "memoryGiBHour": 0.01, "monthlyRequests": 1e9},
            "stepWeights": [5, 10],  # policy keys live here too and are ignored by the judge
        }
    )
    assert (settings.interval_seconds, settings.warmup_seconds, settings.max_duration_seconds) == (
        30,
        60,
        3600,
    )
    assert settings.confidence == 0.9
    assert settings.kpis[0].quantile == pytest.approx(0.95)
    assert settings.kpis[1].direction is Direction.HIGHER
    assert settings.guards == (analysis.GuardRail("errors", GuardKind.ERROR_RATE, max_ratio=1.2),)
    assert settings.pricing == analysis.Pricing(0.05, 0.01, 1e9)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (
            {
                "kpis": [
                    {"name": "a", "type": "latencyQuantile", "target": 0.6, "quantile": 0.99},
                    {"name": "b", "type": "throughputPerCpu", "target": -1},
                ]
            },
            "spec.analysis.kpis[1].target",
        ),
        ({"kpis": [{"name": "a", "type": "bogus", "target": 1}]}, "spec.analysis.kpis[0].type"),
        (
            {"kpis": [{"name": "lat", "type": "latencyQuantile", "target": 0.6}]},
            "spec.analysis.kpis[0].quantile",
        ),
        ({"kpis": [{"type": "costPerRequest", "target": 0.7}]}, "spec.analysis.kpis[0].name"),
        ({"kpis": [{"name": "c", "type": "costPerRequest"}]}, "spec.analysis.kpis[0].target"),
        ({"kpis": "p99"}, "spec.analysis.kpis"),
        ({"confidence": 1.5}, "spec.analysis.confidence"),
        ({"interval": "0s"}, "spec.analysis.interval"),
        ({"maxDuration": "soon"}, "spec.analysis.maxDuration"),
        ({"guards": [{"name": "g", "type": "errorRate", "maxRatio": 0}]}, "spec.analysis.guards[0].maxRatio"),
        ({"pricing": {"cpuHour": "cheap"}}, "spec.analysis.pricing.cpuHour"),
        ({"sampleRatioTolerance": 2}, "spec.analysis.sampleRatioTolerance"),
        (
            {
                "kpis": [
                    {"name": "x", "type": "costPerRequest", "target": 0.7},
                    {"name": "x", "type": "costPerRequest", "target": 0.8},
                ]
            },
            "unique",
        ),
    ],
)
def test_bad_values_name_the_field(spec: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        analysis.settings_from_spec(spec)


def test_kpi_target_validates_itself() -> None:
    with pytest.raises(ValueError, match="quantile"):
        analysis.KpiTarget("p", KpiKind.LATENCY_QUANTILE, 0.6)
    assert (
        analysis.KpiTarget("c", KpiKind.COST_PER_REQUEST, 0.7, direction=Direction.HIGHER).direction
        is Direction.HIGHER
    )
