"""What the data scientist sees while it waits: one compact line per change.

    [  14.2 s] approval  do1: approved · do2: review · rounds 0/1

Per owner its job status (with the reason once there is one), the Flower rounds
done out of the total, and the time since the run started. A line is printed
only when something in it other than the clock changed.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Callable, Iterable

# syft-rds job statuses in a word or two (the results page uses the long wording).
SHORT_STATUS = {
    "not contacted": "waiting",
    "logged in as guest": "guest",
    "pending_code_review": "review",
    "approved": "approved",
    "job_in_progress": "running",
    "job_run_finished": "finished",
    "job_run_failed": "FAILED",
    "rejected": "REJECTED",
}

ROUND_DONE = re.compile(r"fed_app server: round (\d+): wrote")


def short_names(emails: Iterable[str]) -> dict[str, str]:
    """do1@openmined.org -> do1, unless two owners share the part before the @."""
    emails = list(emails)
    locals_ = [e.split("@", 1)[0] for e in emails]
    return {e: (l if locals_.count(l) == 1 else e) for e, l in zip(emails, locals_)}


def owner_state(status: str, reason: str = "") -> str:
    word = SHORT_STATUS.get(status, status.replace("_", " "))
    return f"{word} ({reason})" if reason and status in ("job_run_failed", "rejected") else word


def rounds_done(server_log: Path) -> int:
    """Rounds the Flower server finished so far, from its log."""
    try:
        return len(ROUND_DONE.findall(server_log.read_text(errors="replace")))
    except FileNotFoundError:
        return 0


class Progress:
    def __init__(self, emails: Iterable[str], emit: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic):
        self.names = short_names(emails)
        self.emit = emit
        self.clock = clock
        self.started = clock()
        self.last = None

    def show(self, stage: str, owners: dict[str, tuple[str, str]], rounds: tuple[int, int] | None = None) -> None:
        """owners: email -> (status, reason)."""
        parts = " · ".join(f"{self.names.get(e, e)}: {owner_state(*owners[e])}" for e in owners)
        line = f"{stage:<9} {parts}" + (f" · rounds {rounds[0]}/{rounds[1]}" if rounds else "")
        if line != self.last:
            self.last = line
            self.emit(f"[{self.clock() - self.started:6.1f} s] {line}")
