"""The DS's workflow, step by step, as plain functions (the seed's steps 4 to 8).

bootstrap a copy of the app → submit it to every owner → wait for the owners' runners to
approve it → (the Flower server: flower_server.py) → wait for every job's final status →
check who replied. The mock preview runs the app's statistics on the mocks meanwhile.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from federation.common.settings import ScientistSettings, child_environment
from federation.common.statuses import JobStatus
from federation.common.syftbox import SyncClient, wait_for
from federation.scientist.errors import WorkflowError
from federation.scientist.session import OwnerSession, mock_dirs, refresh

log = logging.getLogger(__name__)

# Called with the stage and the owners whenever the DS looked at their jobs (progress lines).
Watcher = Callable[[str, list[OwnerSession]], None]


def _unwatched(stage: str, owners: list[OwnerSession]) -> None:
    pass


def bootstrap_copy(fed_app: Path, run_dir: Path, aggregator: str, datasites: list[str]) -> Path:
    """A fresh copy of the app in `run_dir`, bootstrapped for this aggregator and these owners."""
    import syft_flwr

    app_dir = run_dir / "fed_app"
    shutil.copytree(fed_app, app_dir,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "results", "main.py", ".*"))
    syft_flwr.bootstrap(app_dir, aggregator=aggregator, datasites=datasites)
    return app_dir


def bootstrap(settings: ScientistSettings, run_dir: Path) -> Path:
    return bootstrap_copy(settings.fed_app, run_dir, settings.party.email, settings.datasites)


def submit(settings: ScientistSettings, app_dir: Path, owner: OwnerSession) -> None:
    owner.job = owner.session.job.submit(
        name=f"fed-histograms-{app_dir.parent.name}", user_code_path=str(app_dir),
        dataset_name=settings.dataset, entrypoint="main.py",
        description="Per-outcome histograms of the 8 Pima features",
    )
    owner.status = owner.job.status.value
    log.info("%s: job %s submitted", owner.email, owner.job.uid.hex[:8])


ENDED_BADLY = {JobStatus.REJECTED: "rejected the job", JobStatus.FAILED: "ran the job and it failed"}


def wait_until_running(settings: ScientistSettings, owners: list[OwnerSession], sync: SyncClient,
                       watch: Watcher = _unwatched) -> None:
    """Every owner's runner has approved the job (or we fail naming who did not)."""
    deadline = time.monotonic() + settings.wait_timeout
    while True:
        sync.check_alive()
        statuses = {o.email: JobStatus.of(refresh(o)) for o in owners}
        watch("approval", owners)
        stopped = [o for o in owners if JobStatus.of(o.status) in ENDED_BADLY]
        if stopped:  # no point waiting for the others: the run cannot count
            raise WorkflowError("; ".join(f"{o.email} {ENDED_BADLY[JobStatus.of(o.status)]}: "
                                          f"{o.reason or 'no reason given'}" for o in stopped))
        if all(s is not None and (s.under_way or s is JobStatus.FINISHED) for s in statuses.values()):
            return
        if time.monotonic() > deadline:
            waiting = [e for e, s in statuses.items() if not (s and s.under_way)]
            raise WorkflowError(f"no approval within {settings.wait_timeout:.0f} s from: {', '.join(waiting)}")
        time.sleep(0.5)


def wait_until_done(owners: list[OwnerSession], watch: Watcher = _unwatched, timeout: float = 30) -> None:
    """Record each owner's final job status (it syncs back a moment after the round)."""
    def done() -> bool:
        finished = all((s := JobStatus.of(refresh(o))) is not None and s.ended for o in owners)
        watch("finish", owners)
        return finished

    try:
        wait_for(done, timeout, "the owners' final job status", 0.5)
    except TimeoutError as e:
        log.warning("%s; recording the last status seen", e)


def check_replies(settings: ScientistSettings) -> tuple[dict, list[str]]:
    """The aggregate and the owners missing from it; fewer than MIN_REPLIES replies do not count."""
    path = settings.results_dir / "aggregate.json"
    if not path.exists():
        raise WorkflowError(f"the server wrote no {path}")
    aggregate = json.loads(path.read_text())
    missing = sorted(set(settings.datasites) - set(aggregate.get("datasites", [])))
    replied = len(settings.datasites) - len(missing)
    if replied < settings.min_replies:
        raise WorkflowError(f"only {replied} of {len(settings.datasites)} owners replied, {settings.min_replies} "
                            f"needed (MIN_REPLIES); no reply from {', '.join(missing)}")
    if missing:
        log.warning("no reply from %s: the aggregate counts the other %d owner(s)", ", ".join(missing), replied)
    return aggregate, missing


def start_mock_preview(settings: ScientistSettings, owners: list[OwnerSession]) -> subprocess.Popen:
    """The app's statistics on the owners' mocks (results/mock/), for the page to show beside
    the real ones; runs while the owners review the job."""
    out = settings.results_dir / "mock"
    shutil.rmtree(out, ignore_errors=True)
    with open(settings.party.state_dir / "mock-preview.log", "wb") as log_file:  # the child keeps its copy
        return subprocess.Popen([sys.executable, "-m", "fed_app.preview", str(out),
                                 *map(str, mock_dirs(settings, owners))],
                                cwd=settings.fed_app, env=child_environment(DATASET_NAME=settings.dataset),
                                stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def finish_mock_preview(proc: subprocess.Popen, settings: ScientistSettings) -> None:
    if proc.wait(timeout=120) != 0:  # the page then says there is no mock figure; the run still counts
        log.warning("no mock preview: see %s", settings.party.state_dir / "mock-preview.log")
