"""Fixtures for the fed_app unit tests (kept in tests/unit on purpose)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FED_APP_DIR = REPO_ROOT / "fed_app"

# `import fed_app` must resolve to the inner package fed_app/fed_app (as when the
# bootstrapped app is run from its own folder), not to the outer folder.
if str(FED_APP_DIR) not in sys.path:
    sys.path.insert(0, str(FED_APP_DIR))


def pytest_configure(config):
    # syft_rds (imported by syft_flwr) triggers pydantic v2 deprecation warnings
    config.addinivalue_line(
        "filterwarnings", "ignore::pydantic.warnings.PydanticDeprecatedSince20"
    )
