"""What the data scientist sees while it waits: one compact line per change.

    [  14.2 s] approval  do1: approved · do2: review · rounds 0/1

Per owner its job status (with the reason once it ended badly), the Flower rounds
done out of the total, and the time since the run started. A line is printed
only when something in it other than the clock changed.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable

from federation.common.statuses import short


def short_names(emails: Iterable[str]) -> dict[str, str]:
    """do1@openmined.org -> do1, unless two owners share the part before the @."""
    emails = list(emails)
    locals_ = [e.split("@", 1)[0] for e in emails]
    return {e: (l if locals_.count(l) == 1 else e) for e, l in zip(emails, locals_)}


class Progress:
    def __init__(self, emails: Iterable[str], emit: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic):
        self.names = short_names(emails)
        self.emit = emit
        self.clock = clock
        self.started = clock()
        self.last = None

    def show(self, stage: str, owners: dict[str, tuple[str, str]],
             rounds: tuple[int, int | None] | None = None) -> None:
        """owners: email -> (status, reason); rounds: (done, total, None when the app does not say)."""
        parts = " · ".join(f"{self.names.get(e, e)}: {short(*owners[e])}" for e in owners)
        line = f"{stage:<9} {parts}" + (f" · rounds {rounds[0]}/{'?' if rounds[1] is None else rounds[1]}"
                                        if rounds else "")
        if line != self.last:
            self.last = line
            self.emit(f"[{self.clock() - self.started:6.1f} s] {line}")
