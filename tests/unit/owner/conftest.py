"""Fixtures for the owner's unit tests."""

from __future__ import annotations

import pytest

from tests.unit.fakes import GOOD_MAIN, UID_A, UID_B, UID_C, World


@pytest.fixture(autouse=True)
def close_worlds():
    """Stop the executor thread of every World a test made."""
    yield
    while World.instances:
        World.instances.pop().close()


@pytest.fixture
def world(tmp_path) -> World:
    """A runner over three pending jobs from the DS, with ids UID_A, UID_B, UID_C."""
    w = World(tmp_path)
    w.add_job(GOOD_MAIN, uid=UID_A)
    w.add_job(GOOD_MAIN, uid=UID_B)
    w.add_job(GOOD_MAIN, uid=UID_C)
    return w
