"""Where the owner's jobs are, and the decisions a person or the policy takes on them.

Shared by the runner and the `datasite` CLI, so a decision means the same from both.
syft-rds 0.4.0's own `job.reject` raises AttributeError; `reject` here goes
through the job update that works.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from federation.codehash import code_hash

PENDING = "pending_code_review"
APPROVED = "approved"
REJECTED = "rejected"
IN_PROGRESS = "job_in_progress"
REJECTABLE = {PENDING, "job_run_finished", "job_run_failed"}


class JobError(Exception):
    """A request about a job that cannot be done; the message says why."""


def status(job) -> str:
    return job.status.value


def find(rds, job_id: str):
    """The job whose id starts with `job_id` (dashes and case ignored); exactly one or JobError."""
    prefix = job_id.replace("-", "").lower()
    if not prefix:
        raise JobError("no job id given")
    matches = [j for j in rds.job.get_all() if j.uid.hex.startswith(prefix)]
    if not matches:
        raise JobError(f"no job with id {job_id!r}")
    if len(matches) > 1:
        raise JobError(f"job id {job_id!r} is ambiguous: " + ", ".join(j.uid.hex[:12] for j in matches))
    return matches[0]


def code_dir(rds, job) -> Path:
    return Path(rds.user_code.get(uid=job.user_code_id).local_dir)


def job_code_hash(rds, job) -> str:
    return code_hash(code_dir(rds, job))


def approve(rds, job) -> None:
    if status(job) != PENDING:
        raise JobError(f"job {job.uid.hex[:8]} is {status(job)}: only a pending job can be approved")
    rds.job.approve(job)


def reject(rds, job, reason: str) -> None:
    if not reason.strip():
        raise JobError("a rejection needs a reason")
    if status(job) == REJECTED:
        raise JobError(f"job {job.uid.hex[:8]} is already rejected ({job.error_message})")
    if status(job) not in REJECTABLE:
        raise JobError(f"job {job.uid.hex[:8]} is {status(job)}: it cannot be rejected now")
    rds.job.update_job_status(job.get_update_for_reject(reason.strip()), job)


class Records:
    """The runner's notes on each job (decision, code hash, run), kept in the owner's state."""

    def __init__(self, state_dir: Path):
        self.root = state_dir / "jobs"

    def path(self, job) -> Path:
        return self.root / job.uid.hex / "runner.json"

    def read(self, job) -> dict:
        path = self.path(job)
        return json.loads(path.read_text()) if path.exists() else {}

    def update(self, job, key: str, value) -> None:
        path = self.path(job)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = self.read(job) or {
            "job": job.uid.hex, "name": job.name, "submitter": job.created_by, "dataset": job.dataset_name,
        }
        record[key] = value
        tmp = path.with_name(f".runner.json.{os.getpid()}.tmp")  # the runner and the CLI both write
        tmp.write_text(json.dumps(record, indent=2))
        tmp.replace(path)
