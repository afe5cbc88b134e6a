"""The data scientist's whole workflow, unattended, against every data owner.

guest login to each owner → explore its mock (the private path is refused) →
bootstrap the app → submit a job to every owner (or find the submission a
restarted DS made before) → wait for their runners → Flower server → check who
replied → results served. While it waits it prints one compact line per change.
`federation ds` runs `main`; `federation submit` runs `submit_only`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path

from federation.common import health
from federation.common.kit import KitError, load_kit
from federation.common.settings import ScientistSettings
from federation.common.statuses import JobStatus
from federation.common.syftbox import SyncClient, point_libraries_at
from federation.scientist.errors import WorkflowError
from federation.scientist.flower_server import MESSAGE_LOG, ServerProcess
from federation.scientist.replies import read_rounds
from federation.scientist.progress import Progress
from federation.scientist.run_record import RunLog, archive_previous
from federation.scientist.session import OwnerSession, explore, for_each, import_libraries, login, refresh
from federation.scientist.steps import (bootstrap, check_replies, finish_mock_preview, start_mock_preview, submit,
                                        wait_until_done, wait_until_running)
from federation.scientist.submission import resume_submission, save_submission

log = logging.getLogger(__name__)


class Watch:
    """What the DS shows and records whenever it looks at its owners: one progress line per
    change, and the owners' statuses (and the rounds) in the run record."""

    def __init__(self, run: RunLog | None, owners: list[OwnerSession], progress: Progress | None):
        self.run, self.owners, self.progress = run, owners, progress

    def __call__(self, stage: str, owners: list[OwnerSession] | None = None,
                 rounds: tuple[int, int | None] | None = None) -> None:
        owners = self.owners if owners is None else owners
        if self.progress is not None:
            self.progress.show(stage, {o.email: (o.status, o.reason) for o in owners}, rounds)
        self.record()

    def record(self) -> None:
        if self.run is not None:
            self.run.owners({o.email: o.record() for o in self.owners})

    def server_tick(self, done: int, total: int | None) -> None:
        for o in self.owners:
            refresh(o)
        if self.run is not None:
            self.run.rounds(done, total)
        self("server", rounds=(done, total))


def new_run_dir(settings: ScientistSettings) -> Path:
    run_dir = settings.party.state_dir / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    run_dir.mkdir(parents=True)
    return run_dir


def prepare_and_submit(settings: ScientistSettings, sync: SyncClient, owners: list[OwnerSession],
                       run: RunLog | None = None, resume: bool = False, run_dir: Path | None = None) -> Path:
    """Steps 1–6: log in, explore, bootstrap (into `run_dir`, else a new run folder), submit
    (or, with `resume`, find the earlier submission); returns the bootstrapped app folder.

    The bootstrap needs no owner: it runs while the DS waits for the owners to log in, and its
    step's seconds are what the run waited for it after that."""
    timed = run.step if run is not None else (lambda name: nullcontext())
    import_libraries()  # before the threads below
    with ThreadPoolExecutor(max_workers=1) as pool:
        bootstrapped = pool.submit(bootstrap, settings, run_dir or new_run_dir(settings))
        with timed("login"):
            for_each(owners, login, sync, settings)
        with timed("explore"):
            for_each(owners, explore, settings)
        app_dir = resume_submission(settings, owners) if resume else None
        if app_dir is None:
            with timed("bootstrap"):
                app_dir = bootstrapped.result()
            with timed("submit"):
                for_each(owners, submit, settings, app_dir)
            if resume:
                save_submission(settings, app_dir, owners)
    return app_dir


def run_study(settings: ScientistSettings, sync: SyncClient, run: RunLog) -> None:
    """Every step of one run, recorded in `run` as it goes. The Flower server starts first and
    imports what it needs while the DS logs in, the jobs are submitted and reviewed; it runs its
    round once every owner's job runs."""
    owners = [OwnerSession(e) for e in settings.datasites]
    watch = Watch(run, owners, Progress(settings.datasites, logging.getLogger("federation.progress").info))
    watch.record()
    servers: list[ServerProcess] = []  # the one started for this run, stopped however it ends
    rounds = []
    run_dir = None
    try:
        run_dir = new_run_dir(settings)
        servers.append(ServerProcess(settings, None, run_dir))  # told its app by go()
        app_dir = prepare_and_submit(settings, sync, owners, run, resume=True, run_dir=run_dir)
        run.record.resumed = "submit" not in run.record.steps
        if app_dir.parent != run_dir:  # an earlier submission resumed: its server runs in its own folder
            servers.pop().stop()
            shutil.rmtree(run_dir, ignore_errors=True)
        watch("submitted")
        with run.step("approval"):
            wait_until_running(settings, owners, sync, watch)
        if not servers:  # a resumed submission: started now, as its round may begin at once
            servers.append(ServerProcess(settings, app_dir, app_dir.parent, ahead=False))
        try:
            with run.step("server"):
                servers[0].go(app_dir)
                rounds = servers[0].wait(watch.server_tick)
        finally:
            run.record.replies = [r.to_json() for r in rounds or read_rounds(app_dir.parent / MESSAGE_LOG)]
        replied, missing = check_replies(settings, rounds)
        run.record.datasites, run.record.missing_datasites = replied, missing
        # The mock figures once the real results are in, while the owners' jobs wrap up: during
        # the round it took CPU from the owners' jobs (whose executors weigh a quarter of a party).
        mock_preview = start_mock_preview(settings, owners)
        try:
            with run.step("finish"):
                wait_until_done([o for o in owners if o.email not in missing], watch)
        finally:  # never left running, however the finish ends
            finish_mock_preview(mock_preview, settings)
    finally:
        for server in servers:
            server.stop()
        if run_dir is not None and not any(o.job is not None for o in owners):  # it ended before any job
            shutil.rmtree(run_dir, ignore_errors=True)
        for o in owners:
            if o.job is not None:
                refresh(o)  # never raises: a status it cannot read stays the last one seen
        watch.record()


def main() -> int:
    settings = ScientistSettings.from_env()
    load_kit(settings.party.kit, settings.party.email)  # no kit, no run: before anything is touched
    point_libraries_at(settings.party)
    sync = SyncClient(settings.party)
    # A second run in the same container (`docker exec ds federation ds`) shares the running
    # SyftBox client; the container's health and the results page stay its main process's.
    second_run = sync.running_here()
    report = health.report if not second_run else (lambda *args: None)
    report("starting")
    settings.results_dir.mkdir(parents=True, exist_ok=True)
    archive_previous(settings.results_dir)
    run = RunLog(settings.results_dir, settings.datasites)
    if not second_run:  # the page follows this run, and every later one, as it goes
        from federation.scientist.web import serve_results

        serve_results(settings.results_dir, port=settings.results_port)
    try:
        sync.start(meanwhile=import_libraries)  # the libraries load while the client starts
        sync.ensure_keys()
        run_study(settings, sync, run)
    except KitError:  # this container cannot be the DS: it stops, saying why (cli prints it)
        sync.stop()
        raise
    except Exception as e:  # whatever it was, the run record and the health say so
        run.finish(error=f"{e}" if isinstance(e, WorkflowError) else f"{type(e).__name__}: {e}")
        log.error("run failed: %s", run.record.error)
        report("failed", run.record.error)
        code = 1
    else:
        run.finish()
        missing = run.record.missing_datasites
        log.info("run ok in %.1f s: %s; results in %s", run.record.seconds,
                 f"no reply from {', '.join(missing)}" if missing else "every owner replied", settings.results_dir)
        report("ready", "results served")
        code = 0
    try:
        if not second_run:
            # Stay up: the page keeps serving (a failed run's reason too), and later runs
            # (`docker exec ds federation ds`, the notebook) use this SyftBox client.
            while True:
                time.sleep(5)
                sync.check_alive()
        return code
    finally:
        sync.stop()  # a no-op for a second run: it started no client


def submit_only(watch_seconds: float) -> int:
    """`federation submit`: steps 1–6 only, then report each job's status for a while.

    For a person (or a test) checking what an owner does with a job; runs no server.
    """
    settings = ScientistSettings.from_env()
    point_libraries_at(settings.party)
    sync = SyncClient(settings.party)
    owners = [OwnerSession(e) for e in settings.datasites]
    try:
        sync.start()
        sync.ensure_keys()
        prepare_and_submit(settings, sync, owners)
        deadline = time.monotonic() + watch_seconds
        while time.monotonic() < deadline:
            for o in owners:
                refresh(o)
            if all((status := JobStatus.of(o.status)) is not None and status.ended for o in owners):
                break  # nothing more will change
            time.sleep(1)
    except (WorkflowError, TimeoutError) as e:
        log.error("%s", e)
        return 1
    finally:
        sync.stop()
    print("RESULT " + json.dumps({o.email: {"job": o.job.uid.hex if o.job else None, "status": o.status,
                                "reason": o.reason} for o in owners}))
    return 0
