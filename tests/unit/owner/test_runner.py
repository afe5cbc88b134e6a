"""The owner's runner over fake rds/sync, with real code folders and processes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from federation.common.codehash import code_hash
from federation.common.settings import Policy
from federation.owner import runner as runner_module
from federation.owner.runner import NotApproved, Runner
from tests.unit.fakes import (DS, FAIL_MAIN, FORKING_MAIN, GOOD_MAIN, SLOW_MAIN, STRANGER, Status, World)


def test_allowlisted_pending_job_is_approved_and_run(tmp_path):
    w = World(tmp_path)
    job = w.add_job(GOOD_MAIN, submitter="DS@OpenMined.org")
    w.runner.serve_once()

    assert w.rds.job.approved == [job.uid]
    assert w.rds.job.history(job.uid) == ["job_in_progress", "job_run_finished"]
    assert w.stored(job).status == Status.job_run_finished
    assert w.stored(job).error_message is None
    out = w.out(job)
    assert (out / "output" / "runs.txt").read_text() == "7\n"  # the job read the private rows
    # ... from a copy on the jobs volume, gone once the job ended; its log and output are kept
    assert f"DATA_DIR={w.job_dir(job) / 'data'}" in (out / "stdout.log").read_text()
    assert not w.job_dir(job).exists()
    rec = w.record(job)
    assert rec["job"] == job.uid.hex and rec["submitter"] == "DS@OpenMined.org"
    assert rec["dataset"] == "pima-indians-diabetes-database"
    assert rec["decision"]["approve"] is True and "DS@OpenMined.org" in rec["decision"]["reason"]
    assert rec["decision"]["action"] == "approve" and rec["decision"]["by"] == "policy"
    assert rec["code_hash"] == code_hash(w.code_dir(job))
    assert rec["run"]["return_code"] == 0 and rec["run"]["error"] is None
    assert rec["run"]["seconds"] >= 0
    assert w.sync.keys_waited and w.sync.keys_waited[0][0] == "DS@OpenMined.org"

    # a finished job is not run again
    w.runner.serve_once()
    assert (out / "output" / "runs.txt").read_text() == "7\n"
    assert w.rds.job.history(job.uid) == ["job_in_progress", "job_run_finished"]


@pytest.mark.parametrize("submitter", ["mallory@openmined.org", None])
def test_pending_job_from_someone_else_is_never_approved_or_run(tmp_path, submitter):
    w = World(tmp_path)
    job = w.add_job(GOOD_MAIN, submitter=submitter)
    w.runner.serve_once()
    w.runner.serve_once()

    assert w.rds.job.approved == []
    assert w.rds.job.updates == []
    # the code is looked up once, to hash it for the (single) decision, never to run it
    assert w.rds.user_code.fetched == [job.user_code_id]
    assert w.stored(job).status == Status.pending_code_review
    rec = w.record(job)
    assert rec["decision"]["approve"] is False
    assert rec["decision"]["action"] == "pending" and rec["decision"]["by"] == "policy"
    assert (submitter or "(unknown)") in rec["decision"]["reason"]
    assert rec["code_hash"] == code_hash(w.code_dir(job))
    assert "run" not in rec
    assert not (w.out(job) / "output").exists()
    assert not w.job_dir(job).exists()
    assert not (w.code_dir(job) / "scratch.txt").exists()


def test_approved_job_whose_stored_status_is_pending_is_refused(tmp_path):
    w = World(tmp_path)
    job = w.add_job(GOOD_MAIN)  # stored: pending
    cached = job.copy()
    cached.status = Status.approved  # what an outdated copy says
    with pytest.raises(NotApproved) as info:
        w.runner.run(cached)
    assert job.uid.hex in str(info.value) and "pending_code_review" in str(info.value)
    assert w.rds.user_code.fetched == []
    assert w.rds.job.updates == []
    assert not (w.out(job) / "output").exists()
    assert w.stored(job).status == Status.pending_code_review


def test_serve_once_with_a_stale_approved_status_runs_nothing(tmp_path):
    w = World(tmp_path)
    job = w.add_job(GOOD_MAIN, submitter="mallory@openmined.org")
    w.rds.job.stale[job.uid] = Status.approved  # get_all shows approved, the store says pending
    w.runner.serve_once()
    assert w.rds.job.updates == []  # not run, and not marked failed either
    assert w.stored(job).status == Status.pending_code_review
    assert not (w.out(job) / "output").exists()


def test_failing_job_is_marked_failed_and_the_next_job_still_runs(tmp_path):
    w = World(tmp_path)
    bad = w.add_job(FAIL_MAIN, status=Status.approved)
    good = w.add_job(GOOD_MAIN, status=Status.approved)
    w.runner.serve_once()

    assert w.stored(bad).status == Status.job_run_failed
    assert "exit code 1: about to fail (log on the owner: " in w.stored(bad).error_message
    assert w.record(bad)["run"]["return_code"] == 1
    assert "exit code 1" in w.record(bad)["run"]["error"]
    assert "about to fail" in (w.out(bad) / "stderr.log").read_text()

    assert w.stored(good).status == Status.job_run_finished
    assert (w.out(good) / "output" / "runs.txt").read_text() == "7\n"


def test_job_that_raises_in_the_runner_is_failed_and_the_next_runs(tmp_path):
    w = World(tmp_path)
    broken = w.add_job(GOOD_MAIN, status=Status.approved)
    del w.rds.user_code.codes[broken.user_code_id]  # its code record is gone: the runner's lookup raises
    good = w.add_job(GOOD_MAIN, status=Status.approved)
    w.runner.serve_once()

    assert w.stored(broken).status == Status.job_run_failed
    assert w.stored(broken).error_message.startswith("KeyError: ")
    assert w.record(broken)["run"]["return_code"] is None
    assert w.stored(good).status == Status.job_run_finished


def test_job_without_its_entrypoint_fails_with_the_reason(tmp_path):
    w = World(tmp_path)
    job = w.add_job(GOOD_MAIN)
    (w.code_dir(job) / "main.py").unlink()
    w.runner.serve_once()
    assert w.rds.job.history(job.uid) == ["job_run_failed"]  # never marked running
    assert w.stored(job).error_message == "the job has no main.py (its entrypoint) in its code"


def test_job_with_a_syntax_error_fails_with_the_line_python_printed(tmp_path):
    w = World(tmp_path)
    job = w.add_job("def broken(:\n    pass\n")
    good = w.add_job(GOOD_MAIN)
    w.runner.serve_once()
    assert w.stored(job).status == Status.job_run_failed
    assert "SyntaxError" in w.stored(job).error_message
    assert w.stored(good).status == Status.job_run_finished


def test_job_naming_a_dataset_this_owner_lacks_is_rejected_with_the_reason(tmp_path):
    w = World(tmp_path)
    job = w.add_job(GOOD_MAIN)
    w.stored(job).dataset_name = "cancer-registry"
    w.runner.serve_once()
    assert w.stored(job).status == Status.rejected
    assert w.stored(job).error_message == ("no dataset named 'cancer-registry' on this datasite "
                                           "(it has: pima-indians-diabetes-database)")
    assert w.rds.job.approved == []


def test_a_job_left_running_by_a_previous_life_of_the_owner_is_marked_failed(tmp_path):
    w = World(tmp_path)
    orphan = w.add_job(GOOD_MAIN, status=Status.job_in_progress)
    done = w.add_job(GOOD_MAIN, status=Status.job_run_finished)
    w.runner.close_interrupted()
    assert w.stored(orphan).status == Status.job_run_failed
    assert "restarted" in w.stored(orphan).error_message
    assert w.stored(done).status == Status.job_run_finished


def test_job_over_the_time_limit_is_killed_and_failed(tmp_path):
    w = World(tmp_path, job_timeout=0.5)
    job = w.add_job(SLOW_MAIN, status=Status.approved)
    t0 = time.monotonic()
    w.runner.serve_once()
    elapsed = time.monotonic() - t0

    assert elapsed < 4
    assert w.stored(job).status == Status.job_run_failed
    assert "limit" in w.stored(job).error_message
    rec = w.record(job)["run"]
    assert rec["return_code"] != 0 and "limit" in rec["error"]
    pid = int((w.out(job) / "output" / "pid.txt").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped
    time.sleep(0.2)
    assert not (w.out(job) / "output" / "woke.txt").exists()


def test_time_limit_also_stops_the_jobs_child_processes(tmp_path):
    """A job must not outlive the owner's limit by leaving a child process behind."""
    w = World(tmp_path, job_timeout=1.0)
    job = w.add_job(FORKING_MAIN, status=Status.approved)
    w.runner.serve_once()
    assert w.stored(job).status == Status.job_run_failed
    child = int((w.out(job) / "output" / "child-pid.txt").read_text())
    try:
        time.sleep(0.3)
        try:
            os.kill(child, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        if alive:  # it may be a zombie already reparented; check its state
            try:
                alive = Path(f"/proc/{child}/status").read_text().split("State:")[1].split()[0] != "Z"
            except (OSError, IndexError):
                pass
        assert not alive, f"the job's child process {child} still runs after the time limit"
    finally:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_job_runs_from_a_copy_outside_the_code_dir(tmp_path):
    w = World(tmp_path)
    job = w.add_job(GOOD_MAIN, status=Status.approved)
    original = w.code_dir(job)
    before = sorted(p.name for p in original.iterdir())
    w.runner.serve_once()

    assert w.stored(job).status == Status.job_run_finished
    assert sorted(p.name for p in original.iterdir()) == before  # nothing written next to the code
    assert not (original / "scratch.txt").exists()
    copy = w.job_dir(job) / "code"
    code_env, cwd = (w.out(job) / "output" / "env.txt").read_text().splitlines()
    assert Path(code_env) == copy and Path(cwd).resolve() == copy.resolve()
    assert not copy.resolve().is_relative_to(original.resolve())
    assert not w.job_dir(job).exists()  # the copy (and what it wrote) left with the job
    assert not list(original.rglob("__pycache__"))


# =========================================================================== runner


@pytest.fixture
def decisions(monkeypatch) -> list:
    """Every decision the runner takes, in order."""
    taken = []
    real = runner_module.decide

    def spy(*args, **kwargs):
        taken.append(real(*args, **kwargs))
        return taken[-1]
    monkeypatch.setattr(runner_module, "decide", spy)
    return taken


def test_manual_mode_waits_for_a_person_then_runs(tmp_path, decisions):
    w = World(tmp_path, policy=Policy(mode="manual", allowlist=(DS,)))
    job = w.add_job(GOOD_MAIN, submitter=DS)  # allowlisted, and still waits
    for _ in range(3):
        w.runner.serve_once()

    assert [d.verdict.value for d in decisions] == ["pending"]
    assert w.rds.job.approved == [] and w.rds.job.updates == []
    assert w.stored(job).status == Status.pending_code_review
    assert w.rds.user_code.fetched == [job.user_code_id]  # hashed once, never run
    rec = w.record(job)
    assert rec["decision"]["action"] == "pending" and rec["decision"]["approve"] is False
    assert rec["decision"]["by"] == "policy" and "manual" in rec["decision"]["reason"]
    assert rec["code_hash"] == code_hash(w.code_dir(job))
    assert "run" not in rec and not (w.out(job) / "output").exists()

    w.stored(job).status = Status.approved  # a person approved it
    w.runner.serve_once()
    assert w.rds.job.history(job.uid) == ["job_in_progress", "job_run_finished"]
    assert (w.out(job) / "output" / "runs.txt").read_text() == "7\n"
    assert w.record(job)["run"]["return_code"] == 0
    assert len(decisions) == 1 and w.rds.job.approved == []  # the runner approved nothing itself


def test_auto_reject_rejects_a_stranger_with_the_reason(tmp_path, decisions):
    w = World(tmp_path, policy=Policy(mode="auto", allowlist=(DS,), otherwise="reject"))
    stranger = w.add_job(GOOD_MAIN, submitter=STRANGER)
    friend = w.add_job(GOOD_MAIN, submitter=DS)
    w.runner.serve_once()
    w.runner.serve_once()

    stored = w.stored(stranger)
    rec = w.record(stranger)
    assert stored.status == Status.rejected
    assert rec["decision"]["action"] == "reject" and rec["decision"]["approve"] is False
    assert stored.error_message == rec["decision"]["reason"] and STRANGER in stored.error_message
    assert w.rds.job.history(stranger.uid) == ["rejected"]
    assert stranger.uid not in w.rds.job.approved
    assert "run" not in rec and not (w.out(stranger) / "output").exists()
    assert all(email != STRANGER for email, _ in w.sync.keys_waited)
    assert sorted(d.verdict.value for d in decisions) == ["approve", "reject"]
    # the allowlisted job next to it is approved and run as usual
    assert w.stored(friend).status == Status.job_run_finished


def test_pinned_hash_runs_only_the_pinned_code(tmp_path, decisions):
    w = World(tmp_path)
    pinned = w.add_job(GOOD_MAIN, submitter=DS)
    other = w.add_job(GOOD_MAIN + "\n# one more line\n", submitter=DS)
    pinned_hash, other_hash = code_hash(w.code_dir(pinned)), code_hash(w.code_dir(other))
    assert pinned_hash != other_hash
    w.runner = Runner(w.rds, w.sync, Policy(mode="auto", allowlist=(DS,), pinned_hashes=(pinned_hash,)),
                      w.state, 20, jobs_dir=w.jobs, relay=w.runner.relay)
    w.runner.serve_once()
    w.runner.serve_once()

    assert w.rds.job.approved == [pinned.uid]
    assert w.stored(pinned).status == Status.job_run_finished
    assert w.record(pinned)["code_hash"] == pinned_hash
    assert pinned_hash[:12] in w.record(pinned)["decision"]["reason"]

    assert w.stored(other).status == Status.pending_code_review
    assert w.rds.job.history(other.uid) == []
    rec = w.record(other)
    assert rec["code_hash"] == other_hash
    assert rec["decision"]["action"] == "pending" and other_hash[:12] in rec["decision"]["reason"]
    assert "hash" in rec["decision"]["reason"]
    assert not (w.out(other) / "output").exists()
    assert len(decisions) == 2




def test_a_job_folder_left_on_the_jobs_volume_is_stopped_and_cleared_at_start(tmp_path):
    w = World(tmp_path)
    left = w.jobs / "0123abcd"
    (left / "output").mkdir(parents=True)
    (left / "output" / "result.txt").write_text("kept")
    (left / "spec.json").write_text("{}")
    w.runner.close_interrupted()
    assert not left.exists()
    assert (w.state / "jobs" / "0123abcd" / "output" / "result.txt").read_text() == "kept"


def with_dependencies(*deps: str) -> dict[str, str]:
    listed = ", ".join(f'"{d}"' for d in deps)
    return {"pyproject.toml": f'[project]\nname = "x"\ndependencies = [{listed}]\n'
                              '[tool.syft_flwr]\napp_name = "ds@openmined.org_app_1"\n'}


def test_a_job_needing_a_package_the_owner_lacks_is_rejected_naming_it(tmp_path):
    w = World(tmp_path)
    job = w.add_job(GOOD_MAIN, extra_files=with_dependencies("numpy>=1", "nopkg-xyz>=1.0"))
    w.runner.serve_once()
    assert w.stored(job).status == Status.rejected
    assert "not installed on this datasite: nopkg-xyz>=1.0" in w.stored(job).error_message
    assert w.record(job)["dependencies"]["missing"] == ["nopkg-xyz>=1.0"]
    assert not (w.out(job) / "output").exists()


def test_other_versions_are_shown_but_run_unless_the_owner_is_strict(tmp_path):
    w = World(tmp_path)
    job = w.add_job(GOOD_MAIN, extra_files=with_dependencies("numpy==1.0.0"))
    w.runner.serve_once()
    assert w.stored(job).status == Status.job_run_finished, w.stored(job).error_message
    note = w.stored(job).error_message  # what the DS sees with its finished job
    assert note.startswith("ran with other versions than declared: numpy==1.0.0 wanted, ")
    assert "versions differ: numpy==1.0.0 wanted" in w.record(job)["decision"]["reason"]

    (tmp_path / "strict").mkdir()
    strict = World(tmp_path / "strict")
    strict.runner.strict_dependencies = True
    job = strict.add_job(GOOD_MAIN, extra_files=with_dependencies("numpy==1.0.0"))
    strict.runner.serve_once()
    assert strict.stored(job).status == Status.rejected
    assert "STRICT_DEPENDENCIES" in strict.stored(job).error_message


def test_a_status_update_that_did_not_take_or_whose_wait_timed_out_is_stored_again(tmp_path, monkeypatch):
    """syft-rpc loses a request file now and then: the owner's update to its own RDS server then
    either changes nothing or waits until its expiry and raises; either way the runner stores it again."""
    w = World(tmp_path)
    job = w.add_job(GOOD_MAIN)
    real_update = w.rds.job.update_job_status
    lost = {"job_in_progress": "timeout", "job_run_finished": "ignored"}

    def flaky(update, job_):
        how = lost.pop(update["status"].value, None)
        if how == "timeout":
            raise TimeoutError("no response within 45s")
        if how == "ignored":
            return job_
        return real_update(update, job_)

    monkeypatch.setattr(w.rds.job, "update_job_status", flaky)
    w.runner.serve_once()
    assert lost == {}
    assert w.stored(job).status == Status.job_run_finished
    assert w.rds.job.history(job.uid) == ["job_in_progress", "job_run_finished"]


def test_a_listing_that_fails_is_logged_and_the_next_poll_serves_the_job(tmp_path, monkeypatch, caplog):
    """A failed listing of the jobs stops nothing: the owner lists them again at its next poll."""
    w = World(tmp_path)
    job = w.add_job(GOOD_MAIN)
    real_get_all = w.rds.job.get_all
    monkeypatch.setattr(w.rds.job, "get_all", lambda: (_ for _ in ()).throw(ValueError("a torn record\nmore")))
    w.runner.serve_once()
    assert "could not list the jobs: ValueError: a torn record" in caplog.text
    assert w.rds.job.updates == []
    monkeypatch.setattr(w.rds.job, "get_all", real_get_all)
    w.runner.serve_once()
    assert w.stored(job).status == Status.job_run_finished
