"""The DS's wait for the owners' runners ends as soon as the run can no longer count."""

from __future__ import annotations

import enum
import time
import uuid
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from federation.common.settings import Party, ScientistSettings
from federation.scientist.errors import WorkflowError
from federation.scientist.session import OwnerSession as Owner
from federation.scientist.steps import wait_until_running


class Status(str, enum.Enum):
    pending_code_review = "pending_code_review"
    job_in_progress = "job_in_progress"
    job_run_failed = "job_run_failed"
    rejected = "rejected"


class Session:
    """A guest session whose job status follows a script: one status per `get`."""

    def __init__(self, statuses: list[str], reason: str = ""):
        self.statuses, self.reason = list(statuses), reason
        self.job = SimpleNamespace(get=self.get)

    def get(self, uid):
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return SimpleNamespace(uid=uid, status=Status(status), error_message=self.reason or None)


def owner(email: str, statuses: list[str], reason: str = "") -> Owner:
    o = Owner(email, session=Session(statuses, reason))
    o.job = SimpleNamespace(uid=uuid.uuid4())
    o.status = "pending_code_review"
    return o


@pytest.fixture
def settings(tmp_path: Path) -> ScientistSettings:
    return ScientistSettings(
        party=Party("ds@openmined.org", "http://syftbox:5001", tmp_path), dataset="d",
        datasites=["a@x.org", "b@x.org"], fed_app=tmp_path, results_dir=tmp_path,
        wait_timeout=30, round_timeout=30, min_replies=2)


SYNC = SimpleNamespace(check_alive=lambda: None)


def test_returns_once_every_job_runs(settings):
    owners = [owner("a@x.org", ["pending_code_review", "job_in_progress"]), owner("b@x.org", ["job_in_progress"])]
    wait_until_running(settings, owners, SYNC)
    assert [o.status for o in owners] == ["job_in_progress", "job_in_progress"]


@pytest.mark.parametrize("status, words", [("rejected", "rejected the job"),
                                           ("job_run_failed", "ran the job and it failed")])
def test_an_owner_that_ends_the_job_ends_the_wait_at_once_with_its_reason(settings, status, words):
    owners = [owner("a@x.org", ["pending_code_review"]), owner("b@x.org", [status], reason="not today")]
    t0 = time.monotonic()
    with pytest.raises(WorkflowError, match=f"b@x.org {words}: not today"):
        wait_until_running(settings, owners, SYNC)
    assert time.monotonic() - t0 < 5  # not the 30 s wait_timeout


def test_times_out_naming_the_owners_still_pending(settings):
    owners = [owner("a@x.org", ["job_in_progress"]), owner("b@x.org", ["pending_code_review"])]
    with pytest.raises(WorkflowError, match=r"no approval within 1 s from: b@x.org$"):
        wait_until_running(replace(settings, wait_timeout=1), owners, SYNC)
