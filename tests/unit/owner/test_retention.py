"""federation.owner.retention: an ended job's files leave the synced tree after SYNCED_RETENTION,
for its folder in the owner's state; everything else stays. On a datasite laid out as syft-rds
0.4.0's RDS server writes it (its models, its YAML store)."""

from __future__ import annotations

import logging
import os
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from federation.owner import retention as retention_module
from federation.owner.retention import Layout, Retention, moved_code, moved_jobs
from federation.owner.runner import Runner

OWNER, DS = "do1@openmined.org", "ds@openmined.org"
HOUR = 3600.0


class Site:
    """One owner's datasite with jobs in syft-rds's store, and the owner's state folder."""

    def __init__(self, root: Path):
        from syft_rds.models import Job, UserCode
        from syft_rds.store import YAMLStore

        self.layout = Layout(root / "datasites", OWNER)
        self.state = root / "state"
        self.jobs = YAMLStore[Job](item_type=Job, store_dir=self.layout.rds / "store")
        self.codes = YAMLStore[UserCode](item_type=UserCode, store_dir=self.layout.rds / "store")

    def url(self, path: str):
        from syft_core import SyftBoxURL

        return SyftBoxURL(f"syft://{OWNER}/app_data/RDS/{path}")

    def add(self, status: str = "job_run_finished", ended_ago: float = 2 * HOUR, app: str = "study-1",
            code_id: uuid.UUID | None = None):
        """A job and (unless `code_id` is another job's) its code: record, copy with a
        bootstrapped pyproject, output folder, and the Flower messages' folder of its app."""
        from syft_rds.models import Job, UserCode

        when = datetime.now(timezone.utc) - timedelta(seconds=ended_ago)
        if code_id is None:
            code = UserCode(name="c", code_type="folder", entrypoint="main.py", created_at=when, updated_at=when)
            code.dir_url = self.url(f"user_files/{DS}/UserCode/{code.uid}")
            code_dir = self.local(code.dir_url)
            code_dir.mkdir(parents=True)
            (code_dir / "main.py").write_text("print('hello')\n")
            (code_dir / "pyproject.toml").write_text(f'[tool.syft_flwr]\napp_name = "{app}"\n')
            self.codes.create(code)
            code_id = code.uid
        failed = {"error": "execution_failed", "error_message": "boom"} if status == "job_run_failed" else {}
        job = Job(name="j", created_by=DS, dataset_name="d", user_code_id=code_id, status=status,
                  created_at=when, updated_at=when, **failed)
        job.output_url = self.url(f"user_files/{DS}/Job/{job.uid}")
        self.local(job.output_url).mkdir(parents=True)
        (self.local(job.output_url) / "out.txt").write_text("42\n")
        messages = self.layout.flwr_app(app) / "rpc" / "messages" / DS
        messages.mkdir(parents=True, exist_ok=True)
        (messages / f"{job.uid.hex}.request").write_text("{}")
        return self.jobs.create(job)

    def local(self, url) -> Path:
        return url.to_local_path(self.layout.datasites)

    def files(self) -> set[str]:
        return {str(p.relative_to(self.layout.datasite)) for p in self.layout.datasite.rglob("*") if p.is_file()}

    def retention(self, seconds: float = HOUR) -> Retention:
        return Retention(self.layout, self.state, seconds)


@pytest.fixture
def site(tmp_path) -> Site:
    return Site(tmp_path)


def test_an_ended_job_past_the_retention_moves_whole_to_its_state_folder(site):
    job = site.add("job_run_finished")
    code_url = site.codes.get_by_uid(job.user_code_id).dir_url
    assert site.retention().sweep() == [job.uid.hex]

    moved = site.state / "jobs" / job.uid.hex / "synced"
    assert (moved / "code" / "main.py").read_text() == "print('hello')\n"
    assert (moved / "output" / "out.txt").read_text() == "42\n"
    assert (moved / "flower" / "rpc" / "messages" / DS / f"{job.uid.hex}.request").is_file()
    assert (moved / "job.yaml").is_file() and (moved / "user_code.yaml").is_file()
    # nothing of it is left in the synced tree (only the store's own permission file)
    assert not site.local(code_url).exists() and not site.local(job.output_url).exists()
    assert not site.layout.flwr_app("study-1").exists()
    assert site.jobs.list_all() == [] and site.codes.list_all() == []
    assert site.files() == {"app_data/RDS/store/syft.pub.yaml"}
    # ... and the owner's history still has it: its record, status and code
    (listed,) = moved_jobs(site.state)
    assert listed.uid == job.uid and listed.status.value == "job_run_finished" and listed.created_by == DS
    assert (moved_code(site.state, job) / "main.py").is_file()


@pytest.mark.parametrize("status", ["job_run_failed", "rejected"])
def test_failed_and_rejected_jobs_move_too(site, status):
    job = site.add(status)
    assert site.retention().sweep() == [job.uid.hex]
    assert [j.status.value for j in moved_jobs(site.state)] == [status]


@pytest.mark.parametrize("status", ["pending_code_review", "approved", "job_in_progress"])
def test_a_job_that_has_not_ended_stays_however_old(site, status):
    site.add(status, ended_ago=30 * 24 * HOUR)
    before = site.files()
    assert site.retention().sweep() == []
    assert site.files() == before and moved_jobs(site.state) == []


def test_an_ended_job_within_the_retention_stays_until_it_is_past_it(site):
    job = site.add(ended_ago=50)
    before = site.files()
    assert site.retention(60).sweep() == [] and site.files() == before
    assert site.retention(60).sweep(now=time.time() + 11) == [job.uid.hex]


def test_code_and_messages_another_job_still_uses_stay_with_it(site):
    old = site.add(app="shared-app")
    running = site.add("job_in_progress", app="shared-app", code_id=old.user_code_id)
    code_dir = site.local(site.codes.get_by_uid(old.user_code_id).dir_url)
    assert site.retention().sweep() == [old.uid.hex]
    assert (code_dir / "main.py").is_file() and site.codes.get_by_uid(old.user_code_id) is not None
    assert site.layout.flwr_app("shared-app").is_dir()
    assert [j.uid for j in site.jobs.list_all()] == [running.uid]
    assert not site.local(old.output_url).exists()  # its own output went
    # once that one has ended too, both its record and the shared code move with it
    site.jobs.update(running.uid, running.model_copy(update={"status": "job_run_finished",
                                                             "updated_at": datetime(2020, 1, 1, tzinfo=timezone.utc)}))
    assert site.retention().sweep() == [running.uid.hex]
    assert (moved_code(site.state, running) / "main.py").is_file() and not code_dir.exists()


def test_a_record_pointing_outside_the_owners_user_files_moves_nothing_there(site, tmp_path):
    from syft_core import SyftBoxURL

    job = site.add()
    elsewhere = site.layout.datasite / "public"
    elsewhere.mkdir()
    (elsewhere / "did.json").write_text("{}")
    site.jobs.update(job.uid, job.model_copy(update={"output_url": SyftBoxURL(f"syft://{OWNER}/public")}))
    assert site.retention().sweep() == [job.uid.hex]
    assert (elsewhere / "did.json").is_file()
    assert not (site.state / "jobs" / job.uid.hex / "synced" / "output").exists()


def test_a_sweep_stopped_half_way_is_finished_by_the_next(site, monkeypatch):
    job = site.add()
    real_move = retention_module._move
    calls = []

    def stop_at_the_record(source, dest):
        if dest.name == "job.yaml" and not calls:
            calls.append(source)
            raise OSError("the owner stopped")
        return real_move(source, dest)

    monkeypatch.setattr(retention_module, "_move", stop_at_the_record)
    with pytest.raises(OSError):
        site.retention().sweep()
    assert [j.uid for j in site.jobs.list_all()] == [job.uid]  # still listed: found again
    assert site.retention().sweep() == [job.uid.hex]
    assert site.jobs.list_all() == [] and (moved_code(site.state, job) / "main.py").is_file()


def test_uncollected_rpc_files_move_once_dead_and_fresh_ones_stay(site):
    folder = site.layout.rds / "rpc" / "job" / "create" / DS
    folder.mkdir(parents=True)
    dead, fresh = folder / "dead.request", folder / "fresh.request"
    answered = folder / "dead.response"
    for path in (dead, fresh, answered):
        path.write_text("{}")
    old = time.time() - 2 * HOUR
    for path in (dead, answered):
        os.utime(path, (old, old))
    assert site.retention(60).sweep_rpc(time.time()) == 2
    assert fresh.is_file() and not dead.exists() and not answered.exists()
    assert (site.state / "rpc" / "job" / "create" / DS / "dead.request").is_file()


def test_the_runner_sweeps_between_jobs_at_most_every_few_seconds_and_survives_a_failing_sweep(
        tmp_path, monkeypatch, caplog):
    sweeps = []

    class Sweeper:
        def sweep(self):
            sweeps.append(time.monotonic())
            if len(sweeps) == 2:
                raise OSError("disk full")

    runner = Runner(rds=None, sync=None, policy=None, state_dir=tmp_path, job_timeout=1, retention=Sweeper())
    clock = [1000.0]
    monkeypatch.setattr("federation.owner.runner.time.monotonic", lambda: clock[0])
    runner.sweep()
    runner.sweep()  # too soon
    clock[0] += 10
    with caplog.at_level(logging.ERROR):
        runner.sweep()  # fails: logged, not raised
    assert "moving ended jobs' files out of the synced tree failed: OSError: disk full" in caplog.text
    clock[0] += 10
    runner.sweep()
    assert len(sweeps) == 3
    Runner(rds=None, sync=None, policy=None, state_dir=tmp_path, job_timeout=1).sweep()  # no retention: nothing
