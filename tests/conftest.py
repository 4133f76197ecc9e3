"""Shared pytest configuration: the integration marker's fixtures live in tests/integration/conftest.py."""

from __future__ import annotations

import sys
from pathlib import Path

# Tests import helpers from tests/ (e.g. tests.support) without installing them.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
