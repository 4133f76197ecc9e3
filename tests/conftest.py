"""Shared pytest configuration: the run order of the tiers, and how `make test` splits the slow tests
across parallel workers. The integration marker's fixtures live in tests/integration/conftest.py.

Tests run unit -> integration -> e2e, whatever paths pytest is given, so a unit failure shows in
seconds instead of after the sandbox's tests; within a tier the collection order is kept.

Under pytest-xdist (`make test` runs the slow tiers with ``-n 2 --dist loadgroup``) each module is
one unit of work, so a module's fixtures (a sandbox, a Helm install, a simulated bench) are set up
once, on one worker; the two real-node modules are one unit, since a machine runs one real node at a
time. The longest units go first, so the other worker fills in with short ones while they run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "integration", "e2e")

# The modules that take longest (minutes each in CI), longest first: they start first under xdist.
REAL_NODE = "real-node"
LONGEST_FIRST = (
    REAL_NODE,  # the node's start (and the project's image builds on a cold cache), then 14 tests
    "tests/integration/test_operator_canary.py",
    "tests/integration/test_operator_presets.py",
    "tests/integration/test_scale.py",
    "tests/integration/test_chart_canary.py",
    "tests/integration/test_operator_ha.py",
    "tests/integration/test_bench_faults.py",
)

# Tests import helpers from tests/ (tests.fakes, tests.support) without installing them.
sys.path.insert(0, str(TESTS.parent))


def tier(path: Path) -> int:
    """The rank of a test file's tier; anything outside the known folders runs last."""
    try:
        folder = path.resolve().relative_to(TESTS).parts[0]
    except (ValueError, IndexError):
        return len(TIERS)
    return TIERS.index(folder) if folder in TIERS else len(TIERS)


def work_unit(item: pytest.Item) -> str:
    """The xdist group of a test: its module, or the real node's one group."""
    module = item.path.resolve().relative_to(TESTS.parent).as_posix()
    return REAL_NODE if "/test_real_node" in module else module


def start_rank(item: pytest.Item) -> int:
    unit = work_unit(item)
    return LONGEST_FIRST.index(unit) if unit in LONGEST_FIRST else len(LONGEST_FIRST)


# Before xdist's own hook, which turns the xdist_group marker into the unit of work. Plugins that
# reorder on purpose (--failed-first) still have the last word.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: tier(item.path))  # stable: the order within a tier is kept
    if getattr(config.option, "dist", "no") == "loadgroup":
        for item in items:
            item.add_marker(pytest.mark.xdist_group(work_unit(item)))
        items.sort(key=start_rank)  # stable again: the rest keep their tier order
