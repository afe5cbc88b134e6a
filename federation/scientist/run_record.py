"""The record of one DS run (`results/run.json`): written by the DS as the run goes, read by
the results page, the scripts (soak, bench, stack) and the tests.

`RunRecord.to_json` writes it; `RunRecord.from_json` reads any version of it, leaving out
what is missing or of the wrong type instead of raising. `RunLog` keeps a run's record
while the workflow runs: each step timed by `with run.step("submit"):`. Stdlib only: the
host scripts import it without the app environment.
"""

from __future__ import annotations

import logging
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from federation.common.fields import emails, integer, mapping, number, text
from federation.common.files import atomic_write_json, read_json

log = logging.getLogger(__name__)

STEP_ORDER = ("login", "explore", "bootstrap", "submit", "approval", "server", "finish")
RUNNING, OK, FAILED = "running", "ok", "failed"
# What archive_previous leaves in place (earlier runs, simulate's and the notebook's own folders):
# every other entry is a run's result.
KEPT = ("history", "simulation", "notebook")


@dataclass
class OwnerRecord:
    """One owner as the DS saw it: its job's status and reason, and its mock's rows."""

    status: str = ""
    reason: str = ""
    mock_rows: int | None = None

    def to_json(self) -> dict:
        out = {"status": self.status, "reason": self.reason}
        if self.mock_rows is not None:
            out["mock_rows"] = self.mock_rows
        return out

    @classmethod
    def from_json(cls, data) -> "OwnerRecord":
        data = mapping(data)
        return cls(status=text(data.get("status")), reason=text(data.get("reason")),
                   mock_rows=integer(data.get("mock_rows")))


@dataclass
class RunRecord:
    status: str = RUNNING  # running | ok | failed
    started: float | None = None
    finished: float | None = None
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds
    error: str = ""
    datasites_expected: list[str] = field(default_factory=list)
    owners: dict[str, OwnerRecord] = field(default_factory=dict)
    rounds_done: int | None = None
    rounds_total: int | None = None
    datasites: list[str] = field(default_factory=list)  # the owners that replied
    missing_datasites: list[str] = field(default_factory=list)
    resumed: bool | None = None  # the DS found its earlier submission instead of submitting
    replies: list[dict] = field(default_factory=list)  # per round: asked, replied, errors, silent

    @property
    def ended(self) -> bool:
        return self.status != RUNNING

    @property
    def current_step(self) -> str | None:
        """While running: the first step of the workflow not yet timed."""
        if self.status != RUNNING:
            return None
        return next((s for s in STEP_ORDER if s not in self.steps), None)

    @property
    def seconds(self) -> float | None:
        return self.finished - self.started if self.started is not None and self.finished is not None else None

    def to_json(self) -> dict:
        out: dict = {"status": self.status, "started": self.started, "steps": dict(self.steps),
                     "datasites_expected": list(self.datasites_expected),
                     "owners": {email: o.to_json() for email, o in self.owners.items()}}
        if self.finished is not None:
            out["finished"] = self.finished
        if self.error:
            out["error"] = self.error
        if self.rounds_total is not None or self.rounds_done is not None:
            out["rounds"] = {"done": self.rounds_done or 0, "total": self.rounds_total}
        if self.replies:
            out["replies"] = [dict(r) for r in self.replies]
        if self.resumed is not None:
            out["resumed"] = self.resumed
        if self.status != RUNNING or self.datasites or self.missing_datasites:
            out["datasites"], out["missing_datasites"] = list(self.datasites), list(self.missing_datasites)
        return out

    @classmethod
    def from_json(cls, data) -> "RunRecord":
        data = mapping(data)
        rounds = mapping(data.get("rounds"))
        resumed = data.get("resumed")
        return cls(
            status=text(data.get("status")) or "unknown",
            started=number(data.get("started")),
            finished=number(data.get("finished")),
            steps={name: s for name, raw in mapping(data.get("steps")).items() if (s := number(raw)) is not None},
            error=text(data.get("error")),
            datasites_expected=emails(data.get("datasites_expected")),
            owners={e: OwnerRecord.from_json(o) for e, o in mapping(data.get("owners")).items() if isinstance(e, str)},
            rounds_done=integer(rounds.get("done")),
            rounds_total=integer(rounds.get("total")),
            datasites=emails(data.get("datasites")),
            missing_datasites=emails(data.get("missing_datasites")),
            resumed=resumed if isinstance(resumed, bool) else None,
            replies=[r for r in data.get("replies", []) if isinstance(r, dict)]
            if isinstance(data.get("replies"), list) else [],
        )

    @classmethod
    def read(cls, path: Path) -> "RunRecord | None":
        """The record in `path`; None when there is none, or it is not (yet) valid JSON."""
        data = read_json(path)
        return cls.from_json(data) if isinstance(data, dict) else None

    def write(self, path: Path) -> None:
        atomic_write_json(path, self.to_json())


def wait_for_run(path: Path, started_after: float, timeout: float, poll: float = 0.25) -> RunRecord:
    """The record in `path` once a run that started after the Unix time `started_after` has
    ended (the scripts and the tests wait on a DS they restarted this way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = RunRecord.read(path)
        if record and (record.started or 0) > started_after and record.ended:
            return record
        time.sleep(poll)
    raise TimeoutError(f"no run started after {started_after:.0f} ended within {timeout:.0f} s ({path})")


class RunLog:
    """The record of the run under way, saved to `results_dir/run.json` at every change."""

    def __init__(self, results_dir: Path, datasites: list[str]):
        self.path = results_dir / "run.json"
        self.record = RunRecord(started=time.time(), datasites_expected=list(datasites))
        self.save()

    def save(self) -> None:
        self.record.write(self.path)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time one step of the workflow; its seconds go into the record when it succeeds."""
        t0 = time.monotonic()
        yield
        self.record.steps[name] = round(time.monotonic() - t0, 2)
        log.info("step %-9s %.1f s", name, self.record.steps[name])
        self.save()

    def owners(self, owners: dict[str, OwnerRecord]) -> None:
        if owners != self.record.owners:
            self.record.owners = owners
            self.save()

    def rounds(self, done: int, total: int | None) -> None:
        if (self.record.rounds_done, self.record.rounds_total) != (done, total):
            self.record.rounds_done, self.record.rounds_total = done, total
            self.save()

    def finish(self, error: str = "") -> None:
        self.record.status, self.record.error, self.record.finished = (FAILED if error else OK), error, time.time()
        self.save()


def archive_previous(results: Path) -> None:
    """Keep an earlier run's results (everything it wrote here: run.json, the app's files, the
    server's log) under history/ instead of overwriting them."""
    if not (results / "run.json").exists():
        return  # no earlier run here (and not a folder of ours to tidy)
    previous = [p for p in results.iterdir() if p.name not in KEPT and not p.name.startswith(".")]
    if not previous:
        return
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime((results / "run.json").stat().st_mtime
                                                          if (results / "run.json").exists() else time.time()))
    dest = results / "history" / stamp
    suffix = 1
    while dest.exists():  # two runs within a second: never merge into an earlier archive
        dest = results / "history" / f"{stamp}-{suffix}"
        suffix += 1
    dest.mkdir(parents=True)
    for p in previous:
        shutil.move(str(p), dest / p.name)
