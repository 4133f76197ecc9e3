"""How numbers, durations and ages read to a person: the one place every view and reason takes them from.

The judge's reasons, ``ferrocanary analyze``, the demo's live view and ``kubectl ferrocanary`` each
show estimates, intervals, targets and times to a decision. Pure functions of plain values (no rich,
no Kubernetes), so the judge, which may import only ``ferrocanary.model``, uses them too. Each view
keeps the look it has always had; the functions take the few choices that differ (significant
digits, the unit, what a missing value reads as) as arguments instead of being copied with a tweak.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any


def _real(value: Any) -> bool:
    # bool is an int, but True is not a reading.
    return isinstance(value, int | float) and not isinstance(value, bool)


def number(value: Any) -> str:
    """Two decimals, or three significant digits when that would hide the value (``kubectl ferrocanary``).

    Anything that is not a number (None, a string from a hand-edited status) reads as ``-``.
    """
    if not _real(value):
        return "-"
    if value != 0 and (abs(value) >= 1000 or abs(value) < 0.01):
        return f"{value:.3g}"
    return f"{value:.2f}"


def significant(value: Any, digits: int = 3) -> str:
    """``digits`` significant digits, ``-`` for a missing value (``analyze`` and the demo's table)."""
    return "-" if value is None else f"{float(value):.{digits}g}"


def quantity(value: float) -> str:
    """A ratio, e-value or rate in a sentence: 3 significant digits, thousands separated, huge in e-notation.

    An unbounded interval end reads ``inf`` / ``-inf`` and NaN ``n/a`` (an early look's interval can
    reach e^±1000).
    """
    if not math.isfinite(value):
        return "inf" if value > 0 else "-inf" if value < 0 else "n/a"
    if abs(value) >= 1e6:
        return f"{value:.2e}"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def minutes(seconds: float | None, *, decimals: int = 0, unit: str = " min", missing: str = "-") -> str:
    """Seconds as minutes (``42 min``); ``missing`` when there is no finite time (never at this rate)."""
    if seconds is None or not math.isfinite(seconds):
        return missing
    return f"{float(seconds) / 60:.{decimals}f}{unit}"


def interval(lower: Any, upper: Any) -> str:
    """``[lower, upper]`` by :func:`number`; a missing end is unbounded (``inf``), both missing ``-``."""
    if lower is None and upper is None:
        return "-"
    return f"[{'-inf' if lower is None else number(lower)}, {'inf' if upper is None else number(upper)}]"


def relation(direction: Any, *, otherwise: str = "<=") -> str:
    """The side of the target that passes: ``<=`` when lower is better, ``>=`` when higher is.

    ``otherwise`` is what a direction that is neither reads as (a status written by hand may lack it).
    """
    if direction == "lower":
        return "<="
    if direction == "higher":
        return ">="
    return otherwise


def duration(seconds: Any) -> str:
    """Durations as kubectl prints ages (its HumanDuration): 90s, 4m10s, 42m, 5h12m, 30h, 3d4h, 20d."""
    if not _real(seconds) or not math.isfinite(seconds) or seconds < 0:
        return "-"
    s = round(seconds)
    mins, hours, days = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if s < 600:
        return _pair(mins, "m", s % 60, "s")
    if hours < 8:
        return f"{mins}m" if hours < 3 else _pair(hours, "h", mins % 60, "m")
    if hours < 48:
        return f"{hours}h"
    # Past a week the hours are noise, as in kubectl.
    return _pair(days, "d", hours % 24 if days < 8 else 0, "h")


def _pair(big: int, big_unit: str, small: int, small_unit: str) -> str:
    """``4m10s``, or ``5m`` when the smaller unit is zero."""
    return f"{big}{big_unit}{small}{small_unit}" if small else f"{big}{big_unit}"


def age(stamp: Any, now: datetime | None = None) -> str:
    """How long ago an RFC 3339 stamp (``2025-03-01T10:30:00Z``) was, as :func:`duration`; ``-`` if none.

    A stamp that is not one (a status edited by hand) is ``-`` too: one bad field must not stop a view.
    """
    if not isinstance(stamp, str) or not stamp:
        return "-"
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        return duration(((now or datetime.now(UTC)) - then).total_seconds())
    except (ValueError, TypeError):  # TypeError: a stamp without a zone cannot be compared with now
        return "-"
