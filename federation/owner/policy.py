"""What may run here: the owner's approval policy, as a pure decision.

manual: a person decides every job (`datasite approve|reject`).
auto:   a job is approved when its submitter is on the allowlist and, if the owner
        pinned any code hashes, its code hash is one of them. Any other job is left
        for a person, or rejected with the reason, as the owner chose.

A policy's answer is a `Verdict` (approve, hold for a person, reject), never a job status:
`jobs.record_decision` turns it into one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from federation.common.settings import Policy


class Verdict(str, enum.Enum):
    APPROVE = "approve"
    HOLD = "pending"  # left for a person to decide (the job record's wording since the start)
    REJECT = "reject"


# UNAPPROVED_JOBS: what auto mode does with a job it does not approve.
OTHERWISE = {"pending": Verdict.HOLD, "reject": Verdict.REJECT}


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str

    @property
    def approve(self) -> bool:
        return self.verdict is Verdict.APPROVE


def decide(policy: Policy, submitter: str | None, code_hash: str) -> Decision:
    if policy.mode == "manual":
        return Decision(Verdict.HOLD, "manual approval: waiting for a person (datasite approve|reject)")
    who = submitter or "(unknown)"
    otherwise = OTHERWISE[policy.otherwise]
    if who.lower() not in {e.lower() for e in policy.allowlist}:
        return Decision(otherwise, f"submitter {who} is not on the allowlist")
    if policy.pinned_hashes and code_hash not in policy.pinned_hashes:
        return Decision(otherwise, f"code hash {code_hash[:12]}… is not one of the owner's approved hashes")
    pinned = f" and code hash {code_hash[:12]}… is approved" if policy.pinned_hashes else ""
    return Decision(Verdict.APPROVE, f"submitter {who} is on the allowlist{pinned}")
