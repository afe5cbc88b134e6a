"""Fakes shared by the unit tests: syft-rds's jobs, user code and datasets, the sync client, and a
runner over them (`World`) with real code folders and real subprocesses."""

from __future__ import annotations

import enum
import json
import sys
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from federation.common.settings import Party, Policy, ScientistSettings
from federation.owner import executor
from federation.owner.runner import Runner

DS = "ds@openmined.org"
STRANGER = "mallory@openmined.org"
CODE = "c0de" * 16  # a code hash
UID_A = uuid.UUID("abc12300" + "a" * 24)  # three job ids, two sharing a prefix
UID_B = uuid.UUID("abc12345" + "b" * 24)
UID_C = uuid.UUID("abd00000" + "c" * 24)


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

    def get_update_for_return_code(self, return_code, error_message=None) -> "FakeUpdate":
        # like syft_rds: 0 finished, anything else failed with the message; updates self
        if return_code == 0:
            self.status, self.error_message = Status.job_run_finished, None
        else:
            self.status, self.error_message = Status.job_run_failed, error_message
        return FakeUpdate(uid=self.uid, status=self.status, error_message=self.error_message)


class FakeUpdate(dict):
    """syft-rds's JobUpdate: its fields as attributes too (the runner adds a note to it)."""

    def __setattr__(self, name, value):
        self[name] = value

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


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
    party: Party = field(default_factory=lambda: Party("do1@openmined.org", "http://syftbox:5001", Path("/nowhere")))
    keys_waited: list = field(default_factory=list)
    alive_checks: int = 0

    def wait_for_public_key(self, email, timeout):
        self.keys_waited.append((email, timeout))

    def check_alive(self):
        self.alive_checks += 1


class NoTraffic:
    """A relay for jobs that send no Flower message: done when the job has ended."""

    def __init__(self, app_name, job_dir, job_id, rules, state_dir, job_ended, round_timeout=0):
        self.job_ended, self.refused, self.suppressed, self.replies = job_ended, None, 0, 0
        self.finished = threading.Event()

    def serve(self):
        while self.job_ended() is None and not self.finished.is_set():
            time.sleep(0.05)
        self.finished.set()

    @property
    def stopping(self):
        return self.finished.is_set()

    def stop(self):
        self.finished.set()


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
    """A runner over fake rds/sync, with real code folders and real subprocesses, and the real
    executor loop in a thread (running each job's main.py: these jobs send no Flower message)."""

    instances: list["World"] = []  # closed after each test (tests/unit/owner/conftest.py)

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
        self.jobs = tmp_path / "jobs"  # the volume the owner shares with its executor
        self.jobs.mkdir()
        self.runner = Runner(self.rds, self.sync, self.policy, self.state, job_timeout, jobs_dir=self.jobs,
                             relay=NoTraffic)
        self._executor_on = True
        # the real executor loop, in a thread, running each job's main.py instead of the harness
        self.executor = threading.Thread(
            target=executor.serve, args=(self.jobs, 64, 16),
            kwargs={"command": lambda job_dir: [sys.executable, "main.py"], "running": lambda: self._executor_on},
            daemon=True)
        self.executor.start()
        World.instances.append(self)

    def close(self) -> None:
        self._executor_on = False
        self.executor.join(timeout=10)

    def add_job(self, main_py: str, submitter: str | None = "ds@openmined.org",
                status: Status = Status.pending_code_review, uid: uuid.UUID | None = None,
                extra_files: dict[str, str] | None = None) -> FakeJob:
        uid, code_id = uid or uuid.uuid4(), uuid.uuid4()
        code_dir = self.tmp / "synced" / f"code-{code_id.hex[:8]}"
        code_dir.mkdir(parents=True)
        (code_dir / "main.py").write_text(textwrap.dedent(main_py))
        (code_dir / "helper.txt").write_text("shipped with the code")
        (code_dir / "pyproject.toml").write_text('[tool.syft_flwr]\napp_name = "ds@openmined.org_app_1"\n')
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
        """The runner's record and the job's logs, in the owner's state."""
        return self.state / "jobs" / job.uid.hex

    def job_dir(self, job: FakeJob) -> Path:
        """The job's folder on the jobs volume: code, data, output."""
        return self.jobs / job.uid.hex

    def record(self, job: FakeJob) -> dict:
        return json.loads((self.out(job) / "runner.json").read_text())

    def stored(self, job: FakeJob) -> FakeJob:
        return self.rds.job.stored[job.uid]




def statuses(w: World) -> dict:
    return {uid: (j.status, j.error_message) for uid, j in w.rds.job.stored.items()}


def scientist_settings(tmp_path: Path, datasites=("do1@openmined.org", "do2@openmined.org")) -> ScientistSettings:
    """A DS's settings over folders of `tmp_path`: an app (one file), a results folder, short waits."""
    app = tmp_path / "fed_app"
    app.mkdir(parents=True, exist_ok=True)
    (app / "app.py").write_text("print('v1')\n")
    (tmp_path / "results").mkdir(exist_ok=True)
    return ScientistSettings(party=Party("ds@openmined.org", "http://syftbox:5001", tmp_path / "home"),
                             dataset="d", datasites=list(datasites), fed_app=app, results_dir=tmp_path / "results",
                             wait_timeout=5, round_timeout=5, min_replies=len(datasites))
