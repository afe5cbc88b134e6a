"""Where the owner's jobs are, and the one way a decision on a job is taken and recorded.

Shared by the runner and the `datasite` CLI, so a decision means the same from both.
syft-rds 0.4.0's own `job.reject` raises AttributeError; `reject` here goes
through the job update that works.
"""

from __future__ import annotations

from pathlib import Path

from federation.common.files import atomic_write_json, read_json
from federation.common.statuses import JobStatus
from federation.owner import retention
from federation.owner.policy import Verdict

REJECTABLE = {JobStatus.PENDING, JobStatus.FINISHED, JobStatus.FAILED}


class JobError(Exception):
    """A request about a job that cannot be done; the message says why."""


def status(job) -> JobStatus | None:
    return JobStatus.of(job.status)


def find(rds, job_id: str, state_dir: Path | None = None):
    """The job whose id starts with `job_id` (dashes and case ignored); exactly one or JobError.
    With the owner's `state_dir`, ended jobs whose files left the synced tree count too."""
    prefix = job_id.replace("-", "").lower()
    if not prefix:
        raise JobError("no job id given")
    candidates = rds.job.get_all() if state_dir is None else retention.every_job(rds.job.get_all(), state_dir)
    matches = [j for j in candidates if j.uid.hex.startswith(prefix)]
    if not matches:
        raise JobError(f"no job with id {job_id!r}")
    if len(matches) > 1:
        raise JobError(f"job id {job_id!r} is ambiguous: " + ", ".join(j.uid.hex[:12] for j in matches))
    return matches[0]


def code_dir(rds, job) -> Path:
    return Path(rds.user_code.get(uid=job.user_code_id).local_dir)


def approve(rds, job) -> None:
    if status(job) is not JobStatus.PENDING:
        raise JobError(f"job {job.uid.hex[:8]} is {job.status.value}: only a pending job can be approved")
    rds.job.approve(job)


def reject(rds, job, reason: str) -> None:
    if not reason.strip():
        raise JobError("a rejection needs a reason")
    if status(job) is JobStatus.REJECTED:
        raise JobError(f"job {job.uid.hex[:8]} is already rejected ({job.error_message})")
    if status(job) not in REJECTABLE:
        raise JobError(f"job {job.uid.hex[:8]} is {job.status.value}: it cannot be rejected now")
    rds.job.update_job_status(job.get_update_for_reject(reason.strip()), job)


class Records:
    """The runner's notes on each job (decision, code hash, run), kept in the owner's state."""

    def __init__(self, state_dir: Path):
        self.root = state_dir / "jobs"

    def path(self, job) -> Path:
        return self.root / job.uid.hex / "runner.json"

    def read(self, job) -> dict:
        record = read_json(self.path(job))
        return record if isinstance(record, dict) else {}

    def update(self, job, key: str, value) -> None:
        record = self.read(job) or {
            "job": job.uid.hex, "name": job.name, "submitter": job.created_by, "dataset": job.dataset_name,
        }
        record[key] = value
        atomic_write_json(self.path(job), record)  # the runner and the CLI both write


def record_decision(rds, records: Records, job, verdict: Verdict, reason: str, by: str) -> None:
    """Take a decision on a job and note it: approve or reject it in the RDS store (a held job
    stays pending), then record who decided what and why. `by`: "policy" or "datasite"."""
    if verdict is Verdict.APPROVE:
        approve(rds, job)
    elif verdict is Verdict.REJECT:
        reject(rds, job, reason)
    records.update(job, "decision", {"action": verdict.value, "approve": verdict is Verdict.APPROVE,
                                     "reason": reason, "by": by})
