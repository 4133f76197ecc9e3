"""``ferrocanary.model.formatting``: each view's number and time forms, as they read today.

The plugin's forms (number, interval, duration) are also covered through its tables in
test_kubectl_plugin.py; these pin the judge's, analyze's and the demo's.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from ferrocanary.model import formatting


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (math.inf, "inf"),
        (-math.inf, "-inf"),
        (math.nan, "n/a"),
        (0.0, "0"),
        (0.5234, "0.523"),
        (999.4, "999"),
        (12345.6, "12,346"),
        (2.5e7, "2.50e+07"),
    ],
)
def test_a_quantity_in_a_sentence(value: float, shown: str) -> None:
    assert formatting.quantity(value) == shown


@pytest.mark.parametrize(
    ("seconds", "kwargs", "shown"),
    [
        (None, {}, "-"),
        (math.inf, {"missing": "never at this rate"}, "never at this rate"),
        (2520.0, {}, "42 min"),
        (250, {"decimals": 1}, "4.2 min"),
        (3725, {"unit": "m", "missing": "never"}, "62m"),
        (None, {"unit": "m", "missing": "never"}, "never"),
    ],
)
def test_minutes_in_each_views_form(seconds: float | None, kwargs: dict[str, Any], shown: str) -> None:
    assert formatting.minutes(seconds, **kwargs) == shown


def test_significant_digits_and_the_better_side() -> None:
    assert formatting.significant(None) == "-"
    assert formatting.significant(0.58123) == "0.581"
    assert formatting.significant(5) == "5"
    assert formatting.relation("lower") == formatting.relation(None) == "<="
    assert formatting.relation("higher") == formatting.relation(None, otherwise=">=") == ">="


def test_a_time_that_is_not_one_reads_as_a_dash() -> None:
    now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert formatting.age("2025-03-01T11:18:00Z", now) == "42m"
    assert formatting.age("yesterday", now) == "-"
    assert formatting.age("2025-03-01T11:18:00", now) == "-"  # no zone: not comparable with now
    assert formatting.duration(math.inf) == "-"
    assert formatting.duration(True) == "-"
