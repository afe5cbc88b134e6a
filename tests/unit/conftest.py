"""Fixtures for the unit tests: the fed_app import path, and a clean environment for settings."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import REPO_ROOT

FED_APP_DIR = REPO_ROOT / "fed_app"

# `import fed_app` must resolve to the inner package fed_app/fed_app (as when the
# bootstrapped app is run from its own folder), not to the outer folder.
if str(FED_APP_DIR) not in sys.path:
    sys.path.insert(0, str(FED_APP_DIR))

# Every variable federation.common.settings reads: the `env` fixture starts without them.
ALL_VARS = [
    "SYFTBOX_EMAIL", "SYFTBOX_SERVER_URL", "FEDERATION_HOME", "DATASET_NAME", "DATASETS_DIR",
    "ALLOW_REAL_ROWS_IN_MOCK", "STRICT_DEPENDENCIES", "FED_APP", "FED_APP_MOUNTED",
    "PIMA_CSV", "PIMA_URL", "DEMO_PARTITION", "APPROVE_JOBS_FROM", "MOCK_ROWS", "JOB_TIMEOUT",
    "APPROVAL", "APPROVED_CODE_HASHES", "UNAPPROVED_JOBS",
    "DATASITES", "FED_APP_DIR", "RESULTS_DIR", "WAIT_TIMEOUT", "ROUND_TIMEOUT", "MIN_REPLIES",
    "RESULTS_PORT", "SYFTBOX_CLIENT_PORT", "SYFTBOX_SYNC_INTERVAL",
    "KIT_FILE", "SYNC_SERVER_URL", "TLS_SERVER_NAMES", "TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CA_FILE",
]


def pytest_configure(config):
    # syft_rds (imported by syft_flwr) triggers pydantic v2 deprecation warnings
    config.addinivalue_line(
        "filterwarnings", "ignore::pydantic.warnings.PydanticDeprecatedSince20"
    )


@pytest.fixture
def env(monkeypatch):
    """A setter for environment variables, after every setting has been unset."""
    for name in ALL_VARS:
        monkeypatch.delenv(name, raising=False)

    def set_(**values):
        for k, v in values.items():
            monkeypatch.setenv(k, v)
    return set_
