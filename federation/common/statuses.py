"""A job's status, as syft-rds stores it and as people read it (short in progress lines, long on
the page), plus the two states the DS records for an owner before it has a job there."""

from __future__ import annotations

import enum


class JobStatus(str, enum.Enum):
    # value (syft-rds's spelling), short wording, long wording
    NOT_CONTACTED = "not contacted", "waiting", "not contacted yet"
    GUEST = "logged in as guest", "guest", "logged in as a guest; no job submitted yet"
    PENDING = "pending_code_review", "review", "waiting for the owner to review the code"
    APPROVED = "approved", "approved", "approved; waiting for the owner's runner to start it"
    RUNNING = "job_in_progress", "running", "running on the owner's private data"
    FINISHED = "job_run_finished", "finished", "finished on the owner's private data"
    FAILED = "job_run_failed", "FAILED", "failed on the owner's private data"
    REJECTED = "rejected", "REJECTED", "rejected by the owner"
    SHARED = "shared", "shared", "shared with the submitter"

    def __new__(cls, value: str, short: str, long: str):
        member = str.__new__(cls, value)
        member._value_ = value
        member.short, member.long = short, long
        return member

    def __str__(self) -> str:
        return self.value

    @classmethod
    def of(cls, value) -> "JobStatus | None":
        """The member for a syft-rds status (its enum or its string); None for a status we do not know."""
        try:
            return cls(getattr(value, "value", value))
        except ValueError:
            return None

    @property
    def ended(self) -> bool:
        """Nothing more will happen to the job."""
        return self in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.REJECTED)

    @property
    def under_way(self) -> bool:
        """Approved: the owner's runner runs it, or is about to."""
        return self in (JobStatus.APPROVED, JobStatus.RUNNING)

    @property
    def stopped_short(self) -> bool:
        """Ended without a result: the DS's run cannot count it."""
        return self in (JobStatus.FAILED, JobStatus.REJECTED)


def short(status: str, reason: str = "") -> str:
    """'job_run_failed', 'boom' -> 'FAILED (boom)': a word or two, the reason when it ended badly."""
    member = JobStatus.of(status)
    word = member.short if member else status.replace("_", " ")
    return f"{word} ({reason})" if reason and member and member.stopped_short else word


def describe(status: str, reason: str = "") -> str:
    """'rejected', 'too broad' -> 'rejected by the owner: too broad'; unknown statuses stay readable."""
    member = JobStatus.of(status)
    words = member.long if member else (status.replace("_", " ").strip() or "unknown status")
    reason = reason.strip()
    return f"{words}: {reason}" if reason else words
