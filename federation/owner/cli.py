"""The owner's side of `datasite`: a person's view of the jobs on this datasite, and its decisions.

    datasite jobs                       every job: id, submitter, name, dataset, submitted,
                                        status, code hash, and why it was or wasn't approved
    datasite show JOB                   the submitted code, every file with its path, and its hash
    datasite approve JOB                the runner then runs it on private data
    datasite reject JOB --reason TEXT   status `rejected`, with the reason
    datasite audit [JOB] [--show]       every reply that left (or was refused): time, job, size,
                                        sha256, records' keys and shapes, decision; --show: values
    datasite replies                    replies waiting for a person (REPLY_APPROVAL=manual)
    datasite release ID                 let a waiting reply go to the DS
    datasite withhold ID --reason TEXT  refuse it: the job fails with the reason
"""

from __future__ import annotations

import json
import time
from datetime import timezone
from pathlib import Path

from federation.common.codehash import code_files, code_hash
from federation.common.settings import Party
from federation.common.statuses import JobStatus
from federation.common.text import table
from federation.owner import dependencies, egress, jobs, retention
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
    # ended jobs whose files moved out of the synced tree (SYNCED_RETENTION) are history all the same
    for job in sorted(retention.every_job(rds.job.get_all(), party.state_dir), key=lambda j: j.created_at):
        record = records.read(job)
        why = job.error_message if jobs.status(job) in (JobStatus.REJECTED, JobStatus.FAILED) else ""
        why = why or record.get("decision", {}).get("reason", "")
        differ = record.get("dependencies", {}).get("differ")
        if differ and "versions" not in why:
            why = f"{why}; versions differ: {'; '.join(differ)}" if why else f"versions differ: {'; '.join(differ)}"
        digest = record.get("code_hash") or code_hash(_code_dir(party, rds, job))
        rows.append([job.uid.hex[:12], job.created_by or "?", job.name, job.dataset_name,
                     job.created_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
                     job.status.value, digest[:16], why])
    print(table(rows, ["ID", "SUBMITTER", "NAME", "DATASET", "SUBMITTED (UTC)", "STATUS", "CODE HASH", "WHY"])
          if rows else "no jobs")
    return 0


def _code_dir(party: Party, rds, job) -> Path:
    moved = retention.moved_code(party.state_dir, job)
    return moved if moved.is_dir() else jobs.code_dir(rds, job)


def cmd_show(party: Party, args) -> int:
    rds = _session(party)
    job = jobs.find(rds, args.job, party.state_dir)
    root = _code_dir(party, rds, job)
    print(f"job {job.uid.hex}  from {job.created_by}  status {job.status.value}")
    print(f"code hash {code_hash(root)}")
    needs = dependencies.check_code(root)
    print(f"dependencies: {needs.note or 'all declared packages installed here, in the declared versions'}")
    for rel in code_files(root):
        print(f"\n===== {rel.as_posix()} =====")
        print((root / rel).read_text(errors="replace").rstrip())
    return 0


def _live(party: Party, rds, job_id: str):
    """The job to decide on; an ended job whose files left the synced tree is named as such."""
    job = jobs.find(rds, job_id, party.state_dir)
    if retention.is_moved(party.state_dir, job):
        raise jobs.JobError(f"job {job.uid.hex[:12]} is {job.status.value} and ended more than SYNCED_RETENTION ago "
                            f"(its files moved to {retention.synced_dir(party.state_dir, job.uid.hex)}): "
                            "there is nothing to decide")
    return job


def cmd_approve(party: Party, args) -> int:
    rds = _session(party)
    job = _live(party, rds, args.job)
    jobs.record_decision(rds, jobs.Records(party.state_dir), job, Verdict.APPROVE, "approved by a person",
                         by="datasite")
    print(f"job {job.uid.hex[:12]} approved: the runner starts it on private data")
    return 0


def cmd_reject(party: Party, args) -> int:
    rds = _session(party)
    job = _live(party, rds, args.job)
    reason = args.reason.strip()
    jobs.record_decision(rds, jobs.Records(party.state_dir), job, Verdict.REJECT, reason, by="datasite")
    print(f"job {job.uid.hex[:12]} rejected: {reason}")
    return 0


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


def _keys(records: list[dict]) -> str:
    parts = [f"{r['record']}: {len(r['entries'])} key(s)" for r in records]
    return "; ".join(parts) or "-"


def cmd_audit(party: Party, args) -> int:
    audit = egress.Audit(party.state_dir)
    entries = audit.entries(args.job)
    if not entries:
        print("no replies" + (f" for job {args.job}" if args.job else ""))
        return 0
    if not args.show:
        print(table([[_when(e["at"]), e["job"][:12], e["reply"], str(e["bytes"]), e["sha256"][:16],
                      _keys(e["records"]), e["decision"]] for e in entries],
                    ["TIME (UTC)", "JOB", "REPLY", "BYTES", "SHA256", "RECORDS", "DECISION"]))
        return 0
    for e in entries:
        print(f"===== reply {e['reply']} of job {e['job']} at {_when(e['at'])}: {e['decision']}")
        for record in e["records"]:
            print(f"  {record['record']} ({record['kind']}): " + ", ".join(f"{k} {v}" for k, v in record["entries"].items()))
        print(json.dumps(audit.values(e["reply"]), indent=2))
    return 0


def cmd_replies(party: Party, args) -> int:
    waiting = egress.ReplyDesk(party.state_dir).pending()
    print(table([[w["reply"], w["job"][:12], _when(w["at"]), str(w["bytes"]), _keys(w["records"]),
                  str(w["suppressed"])] for w in waiting],
                ["REPLY", "JOB", "SINCE (UTC)", "BYTES", "RECORDS", "SUPPRESSED"]) if waiting else "no reply waits")
    return 0


def _decide(party: Party, reply: str, decision: str, reason: str = "") -> dict:
    try:
        return egress.ReplyDesk(party.state_dir).decide(reply, decision, reason)
    except KeyError as e:
        raise jobs.JobError(str(e).strip("'\"")) from None


def cmd_release(party: Party, args) -> int:
    _decide(party, args.reply, "released")
    print(f"reply {args.reply} released: it goes to the DS")
    return 0


def cmd_withhold(party: Party, args) -> int:
    _decide(party, args.reply, "withheld", args.reason.strip())
    print(f"reply {args.reply} withheld: the job fails with your reason")
    return 0


def add_commands(sub) -> None:
    sp = sub.add_parser("audit", help="every reply that left this datasite")
    sp.add_argument("job", nargs="?")
    sp.add_argument("--show", action="store_true", help="print each reply's values")
    sp.set_defaults(fn=cmd_audit)
    sub.add_parser("replies", help="replies waiting for a person").set_defaults(fn=cmd_replies)
    sp = sub.add_parser("release", help="let a waiting reply go")
    sp.add_argument("reply")
    sp.set_defaults(fn=cmd_release)
    _with_reason(sub, "withhold", "reply", cmd_withhold, "refuse a waiting reply, with a reason")
    sub.add_parser("jobs", help="list every job").set_defaults(fn=cmd_jobs)
    for name, fn, text in (("show", cmd_show, "show a job's code"), ("approve", cmd_approve, "approve a job")):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("job")
        sp.set_defaults(fn=fn)
    _with_reason(sub, "reject", "job", cmd_reject, "reject a job, with a reason")


def _with_reason(sub, name: str, target: str, fn, text: str) -> None:
    """A command on one reply or job that a person must give a reason for."""
    sp = sub.add_parser(name, help=text)
    sp.add_argument(target)
    sp.add_argument("--reason", required=True)
    sp.set_defaults(fn=fn)
