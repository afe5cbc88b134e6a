"""`datasite`: a person's view of a datasite, from inside its container.

On a data owner:
    datasite jobs                       every job: id, submitter, name, dataset, submitted,
                                        status, code hash, and why it was or wasn't approved
    datasite show JOB                   the submitted code, every file with its path, and its hash
    datasite approve JOB                the runner then runs it on private data
    datasite reject JOB --reason TEXT   status `rejected`, with the reason
On the data scientist:
    datasite status                     each owner: reachable, dataset present, my job's status

JOB is a job id or a unique prefix of one. An unknown or ambiguous id, or a decision that
does not fit the job's status, is a clear error with exit code 2, and nothing changes.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from datetime import timezone

from federation import jobs
from federation.codehash import code_files
from federation.network import quiet_syft_logs
from federation.settings import DEFAULT_DATASET, Party, SettingsError


def _quiet_libraries() -> None:
    """A CLI prints its answer, not the libraries' deprecation warnings and info logs."""
    warnings.filterwarnings("ignore")
    quiet_syft_logs("ERROR")


def _session(party: Party, host: str):
    import syft_rds

    return syft_rds.init_session(host=host, syftbox_client_config_path=party.config_path)


def _owner_session(party: Party):
    rds = _session(party, party.email)
    if not rds.is_admin:
        raise jobs.JobError(f"{party.email} is not the owner of this datasite")
    return rds


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*r).rstrip() for r in [header, *rows])


def cmd_jobs(party: Party, args) -> int:
    rds = _owner_session(party)
    records = jobs.Records(party.state_dir)
    rows = []
    for job in sorted(rds.job.get_all(), key=lambda j: j.created_at):
        record = records.read(job)
        why = job.error_message if jobs.status(job) in (jobs.REJECTED, "job_run_failed") else ""
        why = why or record.get("decision", {}).get("reason", "")
        digest = record.get("code_hash") or jobs.job_code_hash(rds, job)
        rows.append([job.uid.hex[:12], job.created_by or "?", job.name, job.dataset_name,
                     job.created_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
                     jobs.status(job), digest[:16], why])
    print(_table(rows, ["ID", "SUBMITTER", "NAME", "DATASET", "SUBMITTED (UTC)", "STATUS", "CODE HASH", "WHY"])
          if rows else "no jobs")
    return 0


def cmd_show(party: Party, args) -> int:
    rds = _owner_session(party)
    job = jobs.find(rds, args.job)
    root = jobs.code_dir(rds, job)
    print(f"job {job.uid.hex}  from {job.created_by}  status {jobs.status(job)}")
    print(f"code hash {jobs.job_code_hash(rds, job)}")
    for rel in code_files(root):
        print(f"\n===== {rel.as_posix()} =====")
        print((root / rel).read_text(errors="replace").rstrip())
    return 0


def cmd_approve(party: Party, args) -> int:
    rds = _owner_session(party)
    job = jobs.find(rds, args.job)
    jobs.approve(rds, job)
    jobs.Records(party.state_dir).update(job, "decision", {"action": "approve", "approve": True,
                                                           "reason": "approved by a person", "by": "datasite"})
    print(f"job {job.uid.hex[:12]} approved: the runner starts it on private data")
    return 0


def cmd_reject(party: Party, args) -> int:
    rds = _owner_session(party)
    job = jobs.find(rds, args.job)
    reason = args.reason.strip()
    jobs.reject(rds, job, reason)
    jobs.Records(party.state_dir).update(job, "decision", {"action": "reject", "approve": False,
                                                           "reason": reason, "by": "datasite"})
    print(f"job {job.uid.hex[:12]} rejected: {reason}")
    return 0


def cmd_status(party: Party, args) -> int:
    owners = [e.strip() for e in os.environ.get("DATASITES", "").split(",") if e.strip()]
    if not owners:
        raise SettingsError("setting DATASITES is required but not set")
    dataset = os.environ.get("DATASET_NAME", DEFAULT_DATASET)
    datasites = party.syftbox_dir / "datasites"
    rows = []
    for owner in owners:
        reachable = (datasites / owner / "public" / "did.json").exists()
        present, status, why = "no", "-", ""
        if reachable:
            rds = _session(party, owner)
            present = "yes" if any(d.name == dataset for d in rds.dataset.get_all()) else "no"
            mine = [j for j in rds.job.get_all() if j.created_by == party.email]
            if mine:
                job = max(mine, key=lambda j: j.created_at)
                status, why = f"{jobs.status(job)} ({job.uid.hex[:8]})", job.error_message or ""
            else:
                status = "no job yet"
        rows.append([owner, "yes" if reachable else "no", present, status, why])
    print(_table(rows, ["OWNER", "REACHABLE", "DATASET", "MY LATEST JOB", "REASON"]))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="datasite", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("jobs", help="list every job").set_defaults(fn=cmd_jobs)
    for name, fn, text in (("show", cmd_show, "show a job's code"), ("approve", cmd_approve, "approve a job")):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("job")
        sp.set_defaults(fn=fn)
    sp = sub.add_parser("reject", help="reject a job, with a reason")
    sp.add_argument("job")
    sp.add_argument("--reason", required=True)
    sp.set_defaults(fn=cmd_reject)
    sub.add_parser("status", help="(data scientist) where my jobs stand").set_defaults(fn=cmd_status)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _quiet_libraries()
    try:
        return args.fn(Party.from_env(), args)
    except (jobs.JobError, SettingsError, ValueError) as e:
        print(f"datasite {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
