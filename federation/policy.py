"""What may run here: the owner's approval policy, as a pure decision."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    approve: bool
    reason: str


def decide(submitter: str | None, allowlist: list[str]) -> Decision:
    """Approve a job only when its submitter is on the owner's allowlist."""
    allowed = {e.lower() for e in allowlist}
    if submitter and submitter.lower() in allowed:
        return Decision(True, f"submitter {submitter} is on the allowlist")
    return Decision(False, f"submitter {submitter or '(unknown)'} is not on the allowlist; left for a person")
