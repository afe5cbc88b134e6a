"""Fixtures for every test: where the repository and the public Pima file are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def pima_csv_path() -> Path:
    env = os.environ.get("PIMA_CSV", "").strip()
    return Path(env) if env else REPO_ROOT.parent / "shared/data/pima-indians-diabetes.csv"


@pytest.fixture(scope="session")
def pima_csv() -> Path:
    path = pima_csv_path()
    if not path.is_file():
        pytest.fail(
            f"Pima CSV not found at {path}: put pima-indians-diabetes.csv in "
            "../shared/data/ next to the repository root or set PIMA_CSV",
            pytrace=False,
        )
    return path
