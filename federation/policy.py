"""What may run here: the owner's approval policy, as a pure decision.

manual: a person decides every job (`datasite approve|reject`).
auto:   a job is approved when its submitter is on the allowlist and, if the owner
        pinned any code hashes, its code hash is one of them. Any other job is left
        for a person, or rejected with the reason, as the owner chose.
"""

from __future__ import annotations

from dataclasses import dataclass

APPROVE, PENDING, REJECT = "approve", "pending", "reject"


@dataclass(frozen=True)
class Policy:
    mode: str = "auto"  # auto | manual
    allowlist: tuple[str, ...] = ()
    pinned_hashes: tuple[str, ...] = ()  # empty: any code from an allowlisted submitter
    otherwise: str = PENDING  # what auto mode does with a job it does not approve: pending | reject

    def __post_init__(self):
        if self.mode not in ("auto", "manual"):
            raise ValueError(f"approval mode must be auto or manual, not {self.mode!r}")
        if self.otherwise not in (PENDING, REJECT):
            raise ValueError(f"unapproved jobs must be left pending or rejected, not {self.otherwise!r}")


@dataclass(frozen=True)
class Decision:
    action: str  # approve | pending | reject
    reason: str

    @property
    def approve(self) -> bool:
        return self.action == APPROVE


def decide(policy: Policy, submitter: str | None, code_hash: str) -> Decision:
    if policy.mode == "manual":
        return Decision(PENDING, "manual approval: waiting for a person (datasite approve|reject)")
    who = submitter or "(unknown)"
    if who.lower() not in {e.lower() for e in policy.allowlist}:
        return Decision(policy.otherwise, f"submitter {who} is not on the allowlist")
    if policy.pinned_hashes and code_hash not in policy.pinned_hashes:
        return Decision(policy.otherwise, f"code hash {code_hash[:12]}… is not one of the owner's approved hashes")
    pinned = f" and code hash {code_hash[:12]}… is approved" if policy.pinned_hashes else ""
    return Decision(APPROVE, f"submitter {who} is on the allowlist{pinned}")
