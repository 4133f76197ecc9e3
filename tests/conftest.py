"""Shared pytest configuration: the run order of the tiers. The integration marker's fixtures live in
tests/integration/conftest.py.

Tests run unit -> integration -> e2e, whatever paths pytest is given, so a unit failure shows in
seconds instead of after the sandbox's tests; within a tier the collection order is kept.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "integration", "e2e")

# Tests import helpers from tests/ (tests.fakes, tests.support) without installing them.
sys.path.insert(0, str(TESTS.parent))


def tier(path: Path) -> int:
    """The rank of a test file's tier; anything outside the known folders runs last."""
    try:
        folder = path.resolve().relative_to(TESTS).parts[0]
    except (ValueError, IndexError):
        return len(TIERS)
    return TIERS.index(folder) if folder in TIERS else len(TIERS)


@pytest.hookimpl(tryfirst=True)  # plugins that reorder on purpose (--failed-first) still have the last word
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: tier(item.path))  # stable: the order within a tier is kept
