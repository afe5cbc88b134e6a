"""Finding jobs, approving and rejecting them, the runner's records."""

from __future__ import annotations

import pytest

from federation.owner import jobs
from federation.owner.jobs import JobError, Records
from tests.unit.fakes import (CODE, DS, GOOD_MAIN, UID_A, UID_B, UID_C, Status, World, statuses)

# =========================================================================== jobs


@pytest.mark.parametrize("given,uid", [
    (UID_A.hex, UID_A), (str(UID_B), UID_B), (str(UID_C).upper(), UID_C), (UID_B.hex.upper(), UID_B),
    ("abc1230", UID_A), ("abc1234", UID_B), ("ABD", UID_C), ("abc1-2345", UID_B),
])
def test_find(world, given, uid):
    assert jobs.find(world.rds, given).uid == uid


@pytest.mark.parametrize("given", ["ffff", "abc12399", UID_A.hex + "0"])
def test_find_unknown(world, given):
    with pytest.raises(JobError) as info:
        jobs.find(world.rds, given)
    assert "no job with id" in str(info.value) and given in str(info.value)


def test_find_ambiguous_lists_the_candidates(world):
    with pytest.raises(JobError) as info:
        jobs.find(world.rds, "abc12")
    msg = str(info.value)
    assert "ambiguous" in msg and UID_A.hex[:12] in msg and UID_B.hex[:12] in msg
    assert UID_C.hex[:12] not in msg


@pytest.mark.parametrize("given", ["", "-", "--"])
def test_find_without_an_id(tmp_path, given):
    w = World(tmp_path)
    w.add_job(GOOD_MAIN)  # the only job: an empty id must still not pick it
    with pytest.raises(JobError) as info:
        jobs.find(w.rds, given)
    assert "no job id" in str(info.value)


def test_approve_pending(world):
    jobs.approve(world.rds, jobs.find(world.rds, "abc1234"))
    assert world.rds.job.approved == [UID_B]
    assert world.rds.job.stored[UID_B].status == Status.approved
    assert world.rds.job.stored[UID_A].status == Status.pending_code_review


@pytest.mark.parametrize("status", [
    Status.approved, Status.job_in_progress, Status.job_run_finished, Status.job_run_failed, Status.rejected,
])
def test_approve_non_pending_is_refused(world, status):
    world.rds.job.stored[UID_A].status = status
    before = statuses(world)
    with pytest.raises(JobError) as info:
        jobs.approve(world.rds, jobs.find(world.rds, UID_A.hex))
    assert status.value in str(info.value)
    assert statuses(world) == before
    assert world.rds.job.approved == [] and world.rds.job.updates == []


@pytest.mark.parametrize("reason", ["", "   ", "\n\t"])
def test_reject_needs_a_reason(world, reason):
    before = statuses(world)
    with pytest.raises(JobError) as info:
        jobs.reject(world.rds, jobs.find(world.rds, UID_A.hex), reason)
    assert "reason" in str(info.value)
    assert statuses(world) == before and world.rds.job.updates == []


@pytest.mark.parametrize("status", [Status.pending_code_review, Status.job_run_finished, Status.job_run_failed])
def test_reject(world, status):
    world.rds.job.stored[UID_A].status = status
    jobs.reject(world.rds, jobs.find(world.rds, UID_A.hex), "too broad")
    stored = world.rds.job.stored[UID_A]
    assert stored.status == Status.rejected and stored.error_message == "too broad"
    assert world.rds.job.stored[UID_B].status == Status.pending_code_review


def test_reject_twice_keeps_the_first_reason(world):
    jobs.reject(world.rds, jobs.find(world.rds, UID_A.hex), "too broad")
    with pytest.raises(JobError) as info:
        jobs.reject(world.rds, jobs.find(world.rds, UID_A.hex), "changed my mind")
    assert "already rejected" in str(info.value)
    assert world.rds.job.stored[UID_A].error_message == "too broad"
    assert world.rds.job.history(UID_A) == ["rejected"]


@pytest.mark.parametrize("status", [Status.approved, Status.job_in_progress])
def test_reject_approved_or_running_is_refused(world, status):
    world.rds.job.stored[UID_A].status = status
    before = statuses(world)
    with pytest.raises(JobError) as info:
        jobs.reject(world.rds, jobs.find(world.rds, UID_A.hex), "too late")
    assert status.value in str(info.value)
    assert statuses(world) == before and world.rds.job.updates == []


def test_records_update_keeps_earlier_keys(world, tmp_path):
    records = Records(tmp_path / "state")
    job = world.rds.job.stored[UID_A]
    assert records.read(job) == {}
    records.update(job, "code_hash", CODE)
    records.update(job, "decision", {"action": "pending"})
    records.update(job, "run", {"return_code": 0})
    records.update(job, "decision", {"action": "approve"})
    rec = records.read(job)
    assert rec == {"job": UID_A.hex, "name": job.name, "submitter": DS, "dataset": job.dataset_name,
                   "code_hash": CODE, "decision": {"action": "approve"}, "run": {"return_code": 0}}
    assert records.path(job) == tmp_path / "state" / "jobs" / UID_A.hex / "runner.json"
    assert sorted(p.name for p in records.path(job).parent.iterdir()) == ["runner.json"]


