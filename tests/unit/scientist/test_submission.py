"""A restarted DS finds its submission instead of submitting twice."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from federation.common.codehash import code_hash
from federation.scientist.session import OwnerSession as Owner
from federation.scientist.submission import resume_submission, save_submission
from tests.unit.fakes import scientist_settings

A, B = "do1@openmined.org", "do2@openmined.org"

# ---------------------------------------------------------------- a restarted DS


class Jobs:
    def __init__(self, stored: dict[uuid.UUID, str]):
        self.stored = stored

    def get(self, uid):
        if uid not in self.stored:
            raise ValueError(f"no job {uid}")
        return SimpleNamespace(uid=uid, status=SimpleNamespace(value=self.stored[uid]), error_message=None)


def submitted(tmp_path: Path, statuses: dict[str, str]):
    """A DS that submitted to A and B, then stopped; the owners' stores hold `statuses`."""
    s = scientist_settings(tmp_path)
    s.party.state_dir.mkdir(parents=True)
    app_dir = tmp_path / "home" / "state" / "runs" / "r1" / "fed_app"
    app_dir.mkdir(parents=True)
    uids = {A: uuid.uuid4(), B: uuid.uuid4()}
    before = [Owner(e, job=SimpleNamespace(uid=uids[e])) for e in (A, B)]
    save_submission(s, app_dir, before)
    after = [Owner(e, session=SimpleNamespace(job=Jobs({uids[e]: statuses[e]}))) for e in (A, B)]
    return s, app_dir, after, uids


def test_a_restarted_ds_finds_its_jobs_still_alive_and_submits_nothing(tmp_path):
    s, app_dir, owners, uids = submitted(tmp_path, {A: "job_in_progress", B: "approved"})
    assert resume_submission(s, owners) == app_dir
    assert [(o.job.uid, o.status) for o in owners] == [(uids[A], "job_in_progress"), (uids[B], "approved")]


@pytest.mark.parametrize("ended", ["job_run_finished", "job_run_failed", "rejected"])
def test_a_submission_whose_job_ended_is_not_resumed(tmp_path, ended):
    s, _, owners, _ = submitted(tmp_path, {A: "job_in_progress", B: ended})
    assert resume_submission(s, owners) is None
    assert all(o.job is None for o in owners)


def test_a_changed_app_or_other_owners_are_submitted_afresh(tmp_path):
    s, app_dir, owners, _ = submitted(tmp_path, {A: "approved", B: "approved"})
    (s.fed_app / "app.py").write_text("print('v2')\n")
    assert resume_submission(s, owners) is None
    s, app_dir, owners, _ = submitted(tmp_path / "b", {A: "approved", B: "approved"})
    s.datasites.reverse()
    assert resume_submission(s, owners) is None


def test_a_job_gone_from_the_owners_store_or_no_record_means_submit(tmp_path):
    s, _, owners, _ = submitted(tmp_path, {A: "approved", B: "approved"})
    owners[1].session.job.stored.clear()
    assert resume_submission(s, owners) is None
    assert resume_submission(scientist_settings(tmp_path / "fresh"), owners) is None
    saved = json.loads((s.party.state_dir / "submission.json").read_text())
    assert saved["app_hash"] == code_hash(s.fed_app)


