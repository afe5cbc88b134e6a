"""Unit tests for the role code: settings, the scientist's checks, the owner's runner, health."""

from __future__ import annotations

import enum
import json
import os
import signal
import textwrap
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from federation import health
from federation.codehash import code_hash
from federation.policy import Policy
from federation.runner import NotApproved, Runner
from federation.scientist import WorkflowError, archive_previous, check_replies
from federation.settings import OwnerSettings, Party, ScientistSettings, SettingsError

ALL_VARS = [
    "SYFTBOX_EMAIL", "SYFTBOX_SERVER_URL", "FEDERATION_HOME", "DATASET_NAME", "PRIVATE_DATA_DIR",
    "PIMA_CSV", "PIMA_URL", "DEMO_PARTITION", "APPROVE_JOBS_FROM", "MOCK_ROWS", "JOB_TIMEOUT",
    "APPROVAL", "APPROVED_CODE_HASHES", "UNAPPROVED_JOBS",
    "DATASITES", "FED_APP_DIR", "RESULTS_DIR", "WAIT_TIMEOUT", "ROUND_TIMEOUT", "MIN_REPLIES",
]


# =========================================================================== settings


@pytest.fixture
def env(monkeypatch):
    for name in ALL_VARS:
        monkeypatch.delenv(name, raising=False)

    def set_(**values):
        for k, v in values.items():
            monkeypatch.setenv(k, v)
    return set_


def settings_error(fn) -> str:
    with pytest.raises(SettingsError) as info:
        fn()
    return str(info.value)


def test_owner_settings_from_env_valid(env, tmp_path):
    env(SYFTBOX_EMAIL=" do1@openmined.org ", APPROVE_JOBS_FROM=" ds@openmined.org , b@x.org ,",
        FEDERATION_HOME=str(tmp_path), DEMO_PARTITION="2/3", MOCK_ROWS="25", JOB_TIMEOUT="12.5",
        PIMA_CSV="/data/pima.csv", PRIVATE_DATA_DIR="/data/mine", DATASET_NAME="my-set",
        SYFTBOX_SERVER_URL="http://server:9000", PIMA_URL="file:///x.csv")
    s = OwnerSettings.from_env()
    assert s.party == Party("do1@openmined.org", "http://server:9000", tmp_path)
    assert s.party.syftbox_dir == tmp_path / "SyftBox"
    assert s.party.config_path == tmp_path / "config.json"
    assert s.party.state_dir == tmp_path / "state"
    assert s.policy == Policy(mode="auto", allowlist=("ds@openmined.org", "b@x.org"), pinned_hashes=(),
                              otherwise="pending")
    assert s.demo_partition == (2, 3)
    assert s.mock_rows == 25 and isinstance(s.mock_rows, int)
    assert s.job_timeout == 12.5
    assert s.pima_csv == Path("/data/pima.csv")
    assert s.private_dir == Path("/data/mine")
    assert s.dataset == "my-set"
    assert s.pima_url == "file:///x.csv"


def test_owner_settings_defaults(env):
    env(SYFTBOX_EMAIL="do1@openmined.org", APPROVE_JOBS_FROM="ds@openmined.org")
    s = OwnerSettings.from_env()
    assert s.demo_partition == (1, 1)
    assert s.policy == Policy(mode="auto", allowlist=("ds@openmined.org",), pinned_hashes=(), otherwise="pending")
    assert s.mock_rows == 40
    assert s.job_timeout == 600
    assert s.pima_csv is None
    assert s.private_dir == Path("/data/private")
    assert s.dataset == "pima-indians-diabetes-database"
    assert s.party.server_url == "http://syftbox:5001"
    assert s.party.home == Path.home() / "federation"


@pytest.mark.parametrize("missing", ["SYFTBOX_EMAIL", "APPROVE_JOBS_FROM"])
@pytest.mark.parametrize("how", ["unset", "blank"])
def test_owner_settings_missing_required(env, monkeypatch, missing, how):
    env(SYFTBOX_EMAIL="do1@openmined.org", APPROVE_JOBS_FROM="ds@openmined.org")
    if how == "unset":
        monkeypatch.delenv(missing)
    else:
        monkeypatch.setenv(missing, "   ")
    msg = settings_error(OwnerSettings.from_env)
    assert missing in msg and "required" in msg


def test_scientist_settings_missing_datasites(env):
    env(SYFTBOX_EMAIL="ds@openmined.org")
    msg = settings_error(ScientistSettings.from_env)
    assert "DATASITES" in msg


def test_scientist_settings_missing_email(env):
    env(DATASITES="do1@openmined.org")
    assert "SYFTBOX_EMAIL" in settings_error(ScientistSettings.from_env)


@pytest.mark.parametrize("bad", ["not-an-email", "a@b", "a b@c.org", "@x.org"])
def test_malformed_email_is_named(env, bad):
    env(SYFTBOX_EMAIL=bad, APPROVE_JOBS_FROM="ds@openmined.org")
    msg = settings_error(OwnerSettings.from_env)
    assert "SYFTBOX_EMAIL" in msg and repr(bad) in msg


def test_malformed_email_in_a_list_is_named(env):
    env(SYFTBOX_EMAIL="do1@openmined.org", APPROVE_JOBS_FROM="ds@openmined.org,oops")
    msg = settings_error(OwnerSettings.from_env)
    assert "APPROVE_JOBS_FROM" in msg and "'oops'" in msg

    env(SYFTBOX_EMAIL="ds@openmined.org", DATASITES="do1@openmined.org;do2@openmined.org")
    msg = settings_error(ScientistSettings.from_env)
    assert "DATASITES" in msg


def test_list_of_only_commas_is_refused(env):
    env(SYFTBOX_EMAIL="do1@openmined.org", APPROVE_JOBS_FROM=" , ,")
    msg = settings_error(OwnerSettings.from_env)
    assert "APPROVE_JOBS_FROM" in msg


@pytest.mark.parametrize("part", ["3/2", "x", "0/2", "1/0", "1-2", "2", "1/2/3", "-1/2"])
def test_demo_partition_rejected(env, part):
    env(SYFTBOX_EMAIL="do1@openmined.org", APPROVE_JOBS_FROM="ds@openmined.org", DEMO_PARTITION=part)
    msg = settings_error(OwnerSettings.from_env)
    assert "DEMO_PARTITION" in msg and repr(part) in msg


@pytest.mark.parametrize("value", ["soon", "10s", "nan?"])
def test_owner_non_number_rejected(env, value):
    env(SYFTBOX_EMAIL="do1@openmined.org", APPROVE_JOBS_FROM="ds@openmined.org", JOB_TIMEOUT=value)
    msg = settings_error(OwnerSettings.from_env)
    assert "JOB_TIMEOUT" in msg and "not a number" in msg


@pytest.mark.parametrize("value", ["soon", "10s", "0.5", "0", "-3"])
def test_owner_mock_rows_must_be_a_whole_number(env, value):
    env(SYFTBOX_EMAIL="do1@openmined.org", APPROVE_JOBS_FROM="ds@openmined.org", MOCK_ROWS=value)
    msg = settings_error(OwnerSettings.from_env)
    assert "MOCK_ROWS" in msg and "not a whole number >= 1" in msg and repr(value) in msg


@pytest.mark.parametrize("value", ["0", "-5"])
def test_owner_timeout_must_be_positive(env, value):
    env(SYFTBOX_EMAIL="do1@openmined.org", APPROVE_JOBS_FROM="ds@openmined.org", JOB_TIMEOUT=value)
    msg = settings_error(OwnerSettings.from_env)
    assert "JOB_TIMEOUT" in msg and "> 0" in msg


@pytest.mark.parametrize("name", ["WAIT_TIMEOUT", "ROUND_TIMEOUT"])
def test_scientist_non_number_timeout_rejected(env, name):
    env(SYFTBOX_EMAIL="ds@openmined.org", DATASITES="do1@openmined.org", **{name: "later"})
    msg = settings_error(ScientistSettings.from_env)
    assert name in msg and "'later'" in msg


def test_scientist_settings_valid(env, tmp_path):
    env(SYFTBOX_EMAIL="ds@openmined.org", DATASITES="do1@openmined.org, do2@openmined.org",
        FEDERATION_HOME=str(tmp_path / "home"), FED_APP_DIR=str(tmp_path / "app"),
        RESULTS_DIR=str(tmp_path / "res"), WAIT_TIMEOUT="30", ROUND_TIMEOUT="7.5")
    s = ScientistSettings.from_env()
    assert s.party.email == "ds@openmined.org"
    assert s.party.home == tmp_path / "home"
    assert s.datasites == ["do1@openmined.org", "do2@openmined.org"]
    assert s.fed_app == tmp_path / "app"
    assert s.results_dir == tmp_path / "res"
    assert s.wait_timeout == 30.0 and s.round_timeout == 7.5
    assert s.dataset == "pima-indians-diabetes-database"
    assert s.min_replies == 2  # by default every owner must reply


@pytest.mark.parametrize("value, words", [("3", "DATASITES names only 2"), ("0", "whole number >= 1"),
                                          ("two", "whole number >= 1")])
def test_scientist_min_replies_must_fit_the_owners(env, value, words):
    env(SYFTBOX_EMAIL="ds@openmined.org", DATASITES="do1@openmined.org,do2@openmined.org", MIN_REPLIES=value)
    msg = settings_error(ScientistSettings.from_env)
    assert "MIN_REPLIES" in msg and words in msg


def test_scientist_owner_named_twice_is_refused(env):
    env(SYFTBOX_EMAIL="ds@openmined.org", DATASITES="do1@openmined.org,DO1@openmined.org")
    assert "names an owner twice" in settings_error(ScientistSettings.from_env)


# =========================================================================== scientist


DATASITES = ["do1@openmined.org", "do2@openmined.org"]


def ds_settings(tmp_path: Path, datasites=DATASITES) -> ScientistSettings:
    results = tmp_path / "results"
    results.mkdir(exist_ok=True)
    return ScientistSettings(
        party=Party("ds@openmined.org", "http://syftbox:5001", tmp_path / "home"),
        dataset="pima-indians-diabetes-database", datasites=list(datasites),
        fed_app=tmp_path / "fed_app", results_dir=results, wait_timeout=1.0, round_timeout=1.0,
        min_replies=len(datasites),
    )


def write_aggregate(s: ScientistSettings, aggregate: dict) -> None:
    (s.results_dir / "aggregate.json").write_text(json.dumps(aggregate))


def test_check_replies_fails_below_the_minimum_naming_the_missing_owner(tmp_path):
    s = ds_settings(tmp_path)  # MIN_REPLIES defaults to every owner
    write_aggregate(s, {"datasites": ["do1@openmined.org"], "n": 384})
    with pytest.raises(WorkflowError, match=r"only 1 of 2 owners replied, 2 needed \(MIN_REPLIES\); "
                                            r"no reply from do2@openmined.org$"):
        check_replies(s)


def test_check_replies_at_the_minimum_counts_and_lists_who_is_missing(tmp_path):
    s = replace(ds_settings(tmp_path, DATASITES + ["do3@openmined.org"]), min_replies=2)
    aggregate = {"datasites": ["do3@openmined.org", "do1@openmined.org"], "features": {}}
    write_aggregate(s, aggregate)
    assert check_replies(s) == (aggregate, ["do2@openmined.org"])


def test_check_replies_no_datasites_key_names_everyone(tmp_path):
    s = ds_settings(tmp_path)
    write_aggregate(s, {"n": 0})
    with pytest.raises(WorkflowError) as info:
        check_replies(s)
    assert all(e in str(info.value) for e in DATASITES)


def test_check_replies_all_present_returns_the_aggregate(tmp_path):
    s = ds_settings(tmp_path)
    aggregate = {"datasites": list(reversed(DATASITES)) + ["extra@openmined.org"], "features": {"BMI": [1, 2]}}
    write_aggregate(s, aggregate)
    assert check_replies(s) == (aggregate, [])


def test_check_replies_without_a_file(tmp_path):
    s = ds_settings(tmp_path)
    with pytest.raises(WorkflowError) as info:
        check_replies(s)
    assert "aggregate.json" in str(info.value)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def fill_results(results: Path, tag: str, mtime: float | None = None) -> dict[str, bytes]:
    (results / "figures").mkdir(parents=True, exist_ok=True)
    (results / "aggregate.json").write_text(json.dumps({"run": tag, "datasites": DATASITES}))
    (results / "figures" / f"BMI-{tag}.png").write_bytes(b"\x89PNG" + tag.encode() * 50)
    (results / "figures" / "Age.png").write_bytes(b"\x89PNG age " + tag.encode())
    (results / "run.json").write_text(json.dumps({"status": "ok", "run": tag}))
    if mtime is not None:
        os.utime(results / "run.json", (mtime, mtime))
    return {k: v for k, v in snapshot(results).items() if not k.startswith("history/")}


def test_archive_previous_moves_everything_under_history(tmp_path):
    results = tmp_path / "results"
    before = fill_results(results, "one", mtime=1_700_000_000)
    (results / "keep.txt").write_text("not a result file")
    archive_previous(results)

    history = results / "history"
    stamps = list(history.iterdir())
    assert len(stamps) == 1
    stamp = stamps[0]
    assert stamp.name == time.strftime("%Y%m%d-%H%M%S", time.localtime(1_700_000_000))
    assert snapshot(stamp) == before  # nothing lost, contents identical
    for name in ("aggregate.json", "figures", "run.json"):
        assert not (results / name).exists()
    assert (results / "keep.txt").read_text() == "not a result file"


def test_archive_previous_without_run_json(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "aggregate.json").write_text('{"run": "partial"}')
    archive_previous(results)
    [stamp] = list((results / "history").iterdir())
    assert (stamp / "aggregate.json").read_text() == '{"run": "partial"}'
    assert not (results / "aggregate.json").exists()


def test_archive_previous_empty_folder_is_a_no_op(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    archive_previous(results)
    assert list(results.iterdir()) == []


def test_archive_previous_twice_keeps_both_runs(tmp_path):
    """Two runs whose run.json were written in the same second must both be kept."""
    results = tmp_path / "results"
    first = fill_results(results, "one", mtime=1_700_000_000.1)
    archive_previous(results)
    second = fill_results(results, "two", mtime=1_700_000_000.7)
    archive_previous(results)

    archived = [snapshot(d) for d in sorted((results / "history").iterdir())]
    assert first in archived, "the first archived run was overwritten or moved"
    assert second in archived, "the second archived run is not where it belongs"


# =========================================================================== runner


class Status(str, enum.Enum):
    pending_code_review = "pending_code_review"
    approved = "approved"
    job_in_progress = "job_in_progress"
    job_run_finished = "job_run_finished"
    job_run_failed = "job_run_failed"
    rejected = "rejected"
    shared = "shared"


class FakeJob:
    """The attributes and methods of syft_rds' Job that the runner and the datasite CLI use."""

    def __init__(self, uid, name, created_by, dataset_name, user_code_id, status, error_message=None,
                 created_at=None):
        self.uid, self.name, self.created_by = uid, name, created_by
        self.dataset_name, self.user_code_id = dataset_name, user_code_id
        self.status, self.error_message = status, error_message
        self.created_at = created_at or datetime.now(timezone.utc)

    def copy(self) -> "FakeJob":
        return FakeJob(self.uid, self.name, self.created_by, self.dataset_name, self.user_code_id,
                       self.status, self.error_message, self.created_at)

    def get_update_for_reject(self, reason="unknown reason") -> dict:
        # like syft_rds 0.4.0: only from these statuses; updates self
        if self.status not in (Status.pending_code_review, Status.job_run_finished, Status.job_run_failed):
            raise ValueError(f"Cannot reject job with status: {self.status}")
        self.status, self.error_message = Status.rejected, reason
        return {"uid": self.uid, "status": self.status, "error_message": self.error_message}

    def get_update_for_in_progress(self) -> dict:
        return {"uid": self.uid, "status": Status.job_in_progress}

    def get_update_for_return_code(self, return_code, error_message=None) -> dict:
        # like syft_rds: 0 finished, anything else failed with the message; updates self
        if return_code == 0:
            self.status, self.error_message = Status.job_run_finished, None
        else:
            self.status, self.error_message = Status.job_run_failed, error_message
        return {"uid": self.uid, "status": self.status, "error_message": self.error_message}


class FakeJobs:
    def __init__(self):
        self.stored: dict[uuid.UUID, FakeJob] = {}  # what the RDS store holds
        self.stale: dict[uuid.UUID, Status] = {}  # get_all may show an outdated status
        self.approved: list[uuid.UUID] = []
        self.updates: list[dict] = []

    def get_all(self):
        out = []
        for uid, job in self.stored.items():
            j = job.copy()
            if uid in self.stale:
                j.status = self.stale[uid]
            out.append(j)
        return out

    def get(self, uid):
        return self.stored[uid].copy()

    def approve(self, job):
        assert self.stored[job.uid].status == Status.pending_code_review
        self.approved.append(job.uid)
        self.stored[job.uid].status = Status.approved
        job.status = Status.approved  # syft_rds updates the job in place
        return job

    def update_job_status(self, update, job):
        self.updates.append(dict(update))
        stored = self.stored[update["uid"]]
        stored.status = update["status"]
        if "error_message" in update:
            stored.error_message = update["error_message"]
        job.status, job.error_message = stored.status, stored.error_message  # syft_rds applies it in place
        return job

    def history(self, uid):
        return [u["status"].value for u in self.updates if u["uid"] == uid]


@dataclass
class FakeUserCode:
    entrypoint: str
    local_dir: str


@dataclass
class FakeDataset:
    private: Path
    name: str = "pima-indians-diabetes-database"

    def get_private_path(self):
        return str(self.private)


class FakeUserCodes:
    def __init__(self):
        self.codes: dict[uuid.UUID, FakeUserCode] = {}
        self.fetched: list[uuid.UUID] = []

    def get(self, uid):
        self.fetched.append(uid)
        return self.codes[uid]


class FakeDatasets:
    def __init__(self, private: Path):
        self.private = private

    def get(self, name):
        assert name == "pima-indians-diabetes-database"
        return FakeDataset(self.private)

    def get_all(self):
        return [FakeDataset(self.private)]


class FakeRDS:
    def __init__(self, private: Path):
        self.job = FakeJobs()
        self.user_code = FakeUserCodes()
        self.dataset = FakeDatasets(private)


@dataclass
class FakeSync:
    keys_waited: list = field(default_factory=list)
    alive_checks: int = 0

    def wait_for_public_key(self, email, timeout):
        self.keys_waited.append((email, timeout))

    def check_alive(self):
        self.alive_checks += 1


ALLOWLIST = ["ds@openmined.org"]

GOOD_MAIN = """
import os, pathlib, sys
data = pathlib.Path(os.environ["DATA_DIR"])
out = pathlib.Path(os.environ["OUTPUT_DIR"])
rows = sum(len(f.read_text().splitlines()) - 1 for f in sorted(data.glob("*.csv")))
with open(out / "runs.txt", "a") as f:
    f.write(f"{rows}\\n")
pathlib.Path("scratch.txt").write_text("written next to the code")
(out / "env.txt").write_text(os.environ["CODE_DIR"] + "\\n" + os.getcwd())
print("DATA_DIR=" + str(data))
"""

FAIL_MAIN = """
import sys
print("about to fail", file=sys.stderr)
sys.exit(1)
"""

SLOW_MAIN = """
import os, pathlib, time
out = pathlib.Path(os.environ["OUTPUT_DIR"])
(out / "pid.txt").write_text(str(os.getpid()))
time.sleep(5)
(out / "woke.txt").write_text("the limit did not stop me")
"""

FORKING_MAIN = """
import os, pathlib, subprocess, sys, time
out = pathlib.Path(os.environ["OUTPUT_DIR"])
child = subprocess.Popen([sys.executable, "-c",
    "import pathlib, sys, time; time.sleep(3); pathlib.Path(sys.argv[1]).write_text('child outlived the limit')",
    str(out / "child-woke.txt")])
(out / "child-pid.txt").write_text(str(child.pid))
time.sleep(5)
"""


class World:
    """A runner over fake rds/sync, with real code folders and real subprocesses."""

    def __init__(self, tmp_path: Path, job_timeout: float = 20, policy: Policy | None = None):
        self.tmp = tmp_path
        self.private = tmp_path / "private"
        self.private.mkdir()
        header = "Pregnancies,Glucose,BloodPressure,SkinThickness,Insulin,BMI,DiabetesPedigreeFunction,Age,Outcome"
        (self.private / "part.csv").write_text(header + "\n" + "1,89,66,23,94,28.1,0.167,21,0\n" * 7)
        self.rds = FakeRDS(self.private)
        self.sync = FakeSync()
        self.state = tmp_path / "state"
        self.policy = policy or Policy(mode="auto", allowlist=tuple(ALLOWLIST))
        self.runner = Runner(self.rds, self.sync, self.policy, self.state, job_timeout)

    def add_job(self, main_py: str, submitter: str | None = "ds@openmined.org",
                status: Status = Status.pending_code_review, uid: uuid.UUID | None = None,
                extra_files: dict[str, str] | None = None) -> FakeJob:
        uid, code_id = uid or uuid.uuid4(), uuid.uuid4()
        code_dir = self.tmp / "synced" / f"code-{code_id.hex[:8]}"
        code_dir.mkdir(parents=True)
        (code_dir / "main.py").write_text(textwrap.dedent(main_py))
        (code_dir / "helper.txt").write_text("shipped with the code")
        for rel, text in (extra_files or {}).items():
            (code_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (code_dir / rel).write_text(text)
        self.rds.user_code.codes[code_id] = FakeUserCode("main.py", str(code_dir))
        created = datetime(2025, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=len(self.rds.job.stored))
        job = FakeJob(uid, f"job-{uid.hex[:6]}", submitter, "pima-indians-diabetes-database", code_id, status,
                      created_at=created)
        self.rds.job.stored[uid] = job
        return job

    def code_dir(self, job: FakeJob) -> Path:
        return Path(self.rds.user_code.codes[job.user_code_id].local_dir)

    def out(self, job: FakeJob) -> Path:
        return self.state / "jobs" / job.uid.hex

    def record(self, job: FakeJob) -> dict:
        return json.loads((self.out(job) / "runner.json").read_text())

    def stored(self, job: FakeJob) -> FakeJob:
        return self.rds.job.stored[job.uid]


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
    assert f"DATA_DIR={w.private}" in (out / "stdout.log").read_text()
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
    assert not (w.out(job) / "code").exists()
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
    copy = w.out(job) / "code"
    assert (copy / "scratch.txt").read_text() == "written next to the code"
    assert (copy / "helper.txt").read_text() == "shipped with the code"
    code_env, cwd = (w.out(job) / "output" / "env.txt").read_text().splitlines()
    assert Path(code_env) == copy and Path(cwd).resolve() == copy.resolve()
    assert not copy.resolve().is_relative_to(original.resolve())
    assert not list(original.rglob("__pycache__"))


# =========================================================================== health


@pytest.fixture
def health_file(tmp_path, monkeypatch):
    path = tmp_path / "health.json"
    monkeypatch.setattr(health, "HEALTH_FILE", path)
    return path


def test_health_ready(health_file, capsys):
    health.report("ready", "serving pima-indians-diabetes-database")
    assert json.loads(health_file.read_text())["state"] == "ready"
    assert health.check() == 0
    assert capsys.readouterr().out.strip() == "ready: serving pima-indians-diabetes-database"


def test_health_ready_without_detail(health_file, capsys):
    health.report("ready")
    assert health.check() == 0
    assert capsys.readouterr().out.strip() == "ready"


@pytest.mark.parametrize("state,detail", [
    ("failed", "dataset not published: b.csv: column Outcome, line 3: '7' is not 0 or 1"),
    ("starting", ""),
])
def test_health_not_ready(health_file, capsys, state, detail):
    health.report(state, detail)
    assert health.check() == 1
    out = capsys.readouterr().out
    assert state in out and detail in out


def test_health_latest_report_wins(health_file, capsys):
    health.report("ready", "ok")
    health.report("failed", "sync client died")
    assert health.check() == 1
    assert "failed: sync client died" in capsys.readouterr().out
    assert not list(health_file.parent.glob("*.tmp"))


def test_health_without_a_file_or_with_garbage(health_file, capsys):
    assert health.check() == 1
    assert "starting" in capsys.readouterr().out
    health_file.write_text("{not json")
    assert health.check() == 1
    assert "starting" in capsys.readouterr().out
