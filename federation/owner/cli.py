"""The owner's side of `datasite`: a person's view of the jobs on this datasite, and its decisions.

    datasite jobs                       every job: id, submitter, name, dataset, submitted,
                                        status, code hash, and why it was or wasn't approved
    datasite show JOB                   the submitted code, every file with its path, and its hash
    datasite approve JOB                the runner then runs it on private data
    datasite reject JOB --reason TEXT   status `rejected`, with the reason
"""

from __future__ import annotations

from datetime import timezone

from federation.common.codehash import code_files
from federation.common.settings import Party
from federation.common.statuses import JobStatus
from federation.common.text import table
from federation.owner import jobs
from federation.owner.policy import Verdict


def _session(party: Party):
    import syft_rds

    rds = syft_rds.init_session(host=party.email, syftbox_client_config_path=party.config_path)
    if not rds.is_admin:
        raise jobs.JobError(f"{party.email} is not the owner of this datasite")
    return rds


def cmd_jobs(party: Party, args) -> int:
    rds = _session(party)
    records = jobs.Records(party.state_dir)
    rows = []
    for job in sorted(rds.job.get_all(), key=lambda j: j.created_at):
        record = records.read(job)
        why = job.error_message if jobs.status(job) in (JobStatus.REJECTED, JobStatus.FAILED) else ""
        why = why or record.get("decision", {}).get("reason", "")
        digest = record.get("code_hash") or jobs.job_code_hash(rds, job)
        rows.append([job.uid.hex[:12], job.created_by or "?", job.name, job.dataset_name,
                     job.created_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
                     job.status.value, digest[:16], why])
    print(table(rows, ["ID", "SUBMITTER", "NAME", "DATASET", "SUBMITTED (UTC)", "STATUS", "CODE HASH", "WHY"])
          if rows else "no jobs")
    return 0


def cmd_show(party: Party, args) -> int:
    rds = _session(party)
    job = jobs.find(rds, args.job)
    root = jobs.code_dir(rds, job)
    print(f"job {job.uid.hex}  from {job.created_by}  status {job.status.value}")
    print(f"code hash {jobs.job_code_hash(rds, job)}")
    for rel in code_files(root):
        print(f"\n===== {rel.as_posix()} =====")
        print((root / rel).read_text(errors="replace").rstrip())
    return 0


def cmd_approve(party: Party, args) -> int:
    rds = _session(party)
    job = jobs.find(rds, args.job)
    jobs.record_decision(rds, jobs.Records(party.state_dir), job, Verdict.APPROVE, "approved by a person",
                         by="datasite")
    print(f"job {job.uid.hex[:12]} approved: the runner starts it on private data")
    return 0


def cmd_reject(party: Party, args) -> int:
    rds = _session(party)
    job = jobs.find(rds, args.job)
    reason = args.reason.strip()
    jobs.record_decision(rds, jobs.Records(party.state_dir), job, Verdict.REJECT, reason, by="datasite")
    print(f"job {job.uid.hex[:12]} rejected: {reason}")
    return 0


def add_commands(sub) -> None:
    sub.add_parser("jobs", help="list every job").set_defaults(fn=cmd_jobs)
    for name, fn, text in (("show", cmd_show, "show a job's code"), ("approve", cmd_approve, "approve a job")):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("job")
        sp.set_defaults(fn=fn)
    sp = sub.add_parser("reject", help="reject a job, with a reason")
    sp.add_argument("job")
    sp.add_argument("--reason", required=True)
    sp.set_defaults(fn=cmd_reject)
