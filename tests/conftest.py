"""Shared pytest configuration: the run order of the tiers, and how `make test` splits the slow tests
across parallel workers. The integration marker's fixtures live in tests/integration/conftest.py.

Tests run unit -> integration -> e2e, whatever paths pytest is given, so a unit failure shows in
seconds instead of after the sandbox's tests; within a tier the collection order is kept.

Under pytest-xdist (`make test` runs the slow tiers with ``-n 2 --dist loadscope``) each module is
one unit of work, so a module's fixtures (a sandbox, a real node, a Helm install, a simulated bench)
are set up once, on one worker; every real-node test is in one module, since a machine runs one real
node at a time. The longest modules go first, so the other worker fills in with short ones while
they run. (Not ``--dist loadgroup``: with pytest 9.2 its groups are silently ignored,
pytest-dev/pytest-xdist#1386.)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "integration", "e2e")

# The modules that take longest (minutes each in CI), longest first: they start first under xdist.
LONGEST_FIRST = (
    "tests/integration/test_real_node.py",  # the node (and, on a cold cache, the project's images)
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


def start_rank(item: pytest.Item) -> int:
    module = item.path.resolve().relative_to(TESTS.parent).as_posix()
    return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)


# Plugins that reorder on purpose (--failed-first) still have the last word.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: tier(item.path))  # stable: the order within a tier is kept
    # xdist hands out modules in this order (with --no-loadscope-reorder); a worker process sees
    # numprocesses reset, so it asks for the worker id that xdist sets in its environment.
    if getattr(config.option, "numprocesses", None) or os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=start_rank)  # stable again: the rest keep their tier order
