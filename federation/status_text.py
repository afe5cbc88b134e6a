"""Job statuses and durations in the words a person reads (results page, the DS's log)."""

from __future__ import annotations

import math

# syft-rds job statuses, plus the two the DS records before it has a job.
JOB_STATUS_WORDS = {
    "not contacted": "not contacted yet",
    "logged in as guest": "logged in as a guest; no job submitted yet",
    "pending_code_review": "waiting for the owner to review the code",
    "approved": "approved; waiting for the owner's runner to start it",
    "job_in_progress": "running on the owner's private data",
    "job_run_finished": "finished on the owner's private data",
    "job_run_failed": "failed on the owner's private data",
    "rejected": "rejected by the owner",
}


def describe(status: str, reason: str = "") -> str:
    """'rejected', 'too broad' -> 'rejected by the owner: too broad'; unknown statuses stay readable."""
    words = JOB_STATUS_WORDS.get(status) or status.replace("_", " ").strip() or "unknown status"
    reason = reason.strip()
    return f"{words}: {reason}" if reason else words


def duration(seconds: float) -> str:
    """0.42 -> '0.42 s', 7.3 -> '7.3 s', 42 -> '42 s', 125 -> '2 min 05 s', 3725 -> '1 h 02 min'."""
    if not math.isfinite(seconds) or seconds < 0:
        return "unknown"
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
