"""The data scientist's whole workflow, unattended, against every data owner.

guest login to each owner → explore its mock (the private path is refused) →
bootstrap fed_app → submit a job to every owner → wait for their runners →
Flower server → check that every owner replied → results served.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from federation import health
from federation.network import SyncClient, wait_for
from federation.settings import ScientistSettings

log = logging.getLogger(__name__)

RUNNING = {"approved", "job_in_progress"}
DONE = {"job_run_finished", "job_run_failed", "rejected"}


class WorkflowError(RuntimeError):
    """The run cannot count; the message says which owner and why."""


@dataclass
class Owner:
    email: str
    session: object = None
    job: object = None
    mock_rows: int = 0
    status: str = "not contacted"
    reason: str = ""


def login(sync: SyncClient, settings: ScientistSettings, owner: Owner) -> None:
    """Guest session on the owner's datasite, once its dataset has synced here."""
    import syft_rds

    try:
        sync.wait_for_public_key(owner.email, settings.wait_timeout)
        owner.session = syft_rds.init_session(host=owner.email, syftbox_client_config_path=settings.party.config_path)

        sync.wait(lambda: any(d.name == settings.dataset for d in owner.session.dataset.get_all()),
                  settings.wait_timeout, f"dataset {settings.dataset!r} on {owner.email}", 0.5)
    except TimeoutError as e:
        raise WorkflowError(f"data owner {owner.email} never appeared: {e}") from None
    if owner.session.is_admin:
        raise WorkflowError(f"{settings.party.email} is admin on {owner.email}: expected a guest")
    owner.status = "logged in as guest"


def explore(settings: ScientistSettings, owner: Owner) -> None:
    """Look at the mock; make sure the private part is not ours to see."""
    dataset = owner.session.dataset.get(name=settings.dataset)
    mock_files = sorted(Path(dataset.get_mock_path()).glob("*.csv"))
    owner.mock_rows = sum(max(0, len(f.read_text().splitlines()) - 1) for f in mock_files)
    try:
        dataset.get_private_path()
    except PermissionError:
        pass
    else:
        raise WorkflowError(f"{owner.email} handed the private path of {settings.dataset} to a guest")
    log.info("%s: mock has %d rows in %d file(s); private path refused", owner.email, owner.mock_rows, len(mock_files))


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


def submit(settings: ScientistSettings, app_dir: Path, owner: Owner) -> None:
    owner.job = owner.session.job.submit(
        name=f"fed-histograms-{app_dir.parent.name}", user_code_path=str(app_dir),
        dataset_name=settings.dataset, entrypoint="main.py",
        description="Per-outcome histograms of the 8 Pima features",
    )
    owner.status = owner.job.status.value
    log.info("%s: job %s submitted", owner.email, owner.job.uid.hex[:8])


def refresh(owner: Owner) -> str:
    job = owner.session.job.get(uid=owner.job.uid)
    if job.status.value != owner.status:
        owner.status = job.status.value
        owner.reason = job.error_message or ""
        log.info("%s: job %s %s%s", owner.email, job.uid.hex[:8], owner.status,
                 f" ({owner.reason})" if owner.reason else "")
    return owner.status


def wait_until_running(settings: ScientistSettings, owners: list[Owner], sync: SyncClient) -> None:
    """Every owner's runner has approved the job (or we fail naming who did not)."""
    deadline = time.monotonic() + settings.wait_timeout
    while True:
        sync.check_alive()
        statuses = {o.email: refresh(o) for o in owners}
        ended = {"rejected": "rejected the job", "job_run_failed": "ran the job and it failed"}
        stopped = [o for o in owners if o.status in ended]
        if stopped:  # no point waiting for the others: the run cannot count
            raise WorkflowError("; ".join(f"{o.email} {ended[o.status]}: {o.reason or 'no reason given'}"
                                          for o in stopped))
        if all(s in RUNNING | {"job_run_finished"} for s in statuses.values()):
            return
        if time.monotonic() > deadline:
            waiting = [e for e, s in statuses.items() if s not in RUNNING]
            raise WorkflowError(f"no approval within {settings.wait_timeout:.0f} s from: {', '.join(waiting)}")
        time.sleep(0.5)


def wait_until_done(owners: list[Owner], timeout: float = 30) -> None:
    """Record each owner's final job status (it syncs back a moment after the round)."""
    try:
        wait_for(lambda: all(refresh(o) in DONE for o in owners), timeout, "the owners' final job status", 0.5)
    except TimeoutError as e:
        log.warning("%s; recording the last status seen", e)


def run_server(settings: ScientistSettings, app_dir: Path, run_dir: Path) -> None:
    """The Flower server, in this environment (no fresh venv), writing into the results folder."""
    env = os.environ | {
        "RESULTS_DIR": str(settings.results_dir),
        "DATASITES": ",".join(settings.datasites),
        "DATASET_NAME": settings.dataset,
        "SYFT_FLWR_MSG_TIMEOUT": str(settings.round_timeout),
    }
    with open(run_dir / "server.log", "wb") as out:
        code = subprocess.call([sys.executable, "main.py"], cwd=app_dir, env=env,
                               stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if code != 0:
        tail = (run_dir / "server.log").read_text(errors="replace").splitlines()[-15:]
        raise WorkflowError(f"Flower server exited with {code}:\n" + "\n".join(tail))


def check_every_reply(settings: ScientistSettings) -> dict:
    """The server alone would accept a round with missing replies; a run here needs all."""
    path = settings.results_dir / "aggregate.json"
    if not path.exists():
        raise WorkflowError(f"the server wrote no {path}")
    aggregate = json.loads(path.read_text())
    missing = sorted(set(settings.datasites) - set(aggregate.get("datasites", [])))
    if missing:
        raise WorkflowError(f"no reply from {', '.join(missing)}: the aggregate does not count")
    return aggregate


def archive_previous(results: Path) -> None:
    """Keep earlier results under history/ instead of overwriting them."""
    previous = [results / n for n in ("aggregate.json", "figures", "run.json") if (results / n).exists()]
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


def write_run(settings: ScientistSettings, record: dict) -> None:
    path = settings.results_dir / "run.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(path)


def for_each(owners: list[Owner], fn, *args) -> None:
    """Run `fn(*args, owner)` for every owner at once: each waits on its own owner's sync."""
    with ThreadPoolExecutor(max_workers=len(owners)) as pool:
        for future in [pool.submit(fn, *args, o) for o in owners]:
            future.result()


def prepare_and_submit(settings: ScientistSettings, sync: SyncClient, owners: list[Owner], step) -> Path:
    """Steps 1–6: log in, explore, bootstrap, submit; returns the bootstrapped app folder."""
    step("login", for_each, owners, login, sync, settings)
    step("explore", for_each, owners, explore, settings)
    run_dir = settings.party.state_dir / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    run_dir.mkdir(parents=True)
    app_dir = step("bootstrap", bootstrap, settings, run_dir)
    step("submit", for_each, owners, submit, settings, app_dir)
    return app_dir


def workflow(settings: ScientistSettings, sync: SyncClient, record: dict) -> None:
    owners = [Owner(e) for e in settings.datasites]
    record["owners"] = {o.email: {"status": o.status} for o in owners}

    def step(name: str, fn, *args):
        t0 = time.monotonic()
        result = fn(*args)
        record["steps"][name] = round(time.monotonic() - t0, 2)
        log.info("step %-9s %.1f s", name, record["steps"][name])
        return result

    def note_owners():
        record["owners"] = {o.email: {"status": o.status, "reason": o.reason, "mock_rows": o.mock_rows}
                            for o in owners}
        write_run(settings, record)

    try:
        app_dir = prepare_and_submit(settings, sync, owners, step)
        note_owners()
        step("approval", wait_until_running, settings, owners, sync)
        note_owners()
        step("server", run_server, settings, app_dir, app_dir.parent)
        aggregate = check_every_reply(settings)
        record["datasites"] = aggregate["datasites"]
        step("finish", wait_until_done, owners)
    finally:
        for o in owners:
            if o.job is not None:
                try:
                    refresh(o)
                except Exception:  # a status we cannot read must not hide the real error
                    pass
        note_owners()


def main() -> int:
    settings = ScientistSettings.from_env()
    sync = SyncClient(settings.party)
    # A second run in the same container (`docker exec ds federation ds`) shares the running
    # SyftBox client; the container's health stays that of its main process.
    second_run = sync.running_here()
    report = health.report if not second_run else (lambda *args: None)
    report("starting")
    settings.results_dir.mkdir(parents=True, exist_ok=True)
    archive_previous(settings.results_dir)
    record = {"status": "running", "started": time.time(), "steps": {}, "datasites_expected": settings.datasites}
    write_run(settings, record)

    try:
        sync.start()
        sync.ensure_keys()
        workflow(settings, sync, record)
    except Exception as e:  # whatever it was, the run record and the health say so
        record.update(status="failed", finished=time.time(),
                      error=f"{e}" if isinstance(e, WorkflowError) else f"{type(e).__name__}: {e}")
        write_run(settings, record)
        log.error("run failed: %s", record["error"])
        report("failed", record["error"])
        return 1
    else:
        record.update(status="ok", finished=time.time())
        write_run(settings, record)
        log.info("run ok in %.1f s: every owner replied; results in %s",
                 record["finished"] - record["started"], settings.results_dir)
        if second_run:
            return 0  # the container's main process serves results already
        from federation.web import serve_results

        report("ready", "results served")
        serve_results(settings.results_dir, port=int(os.environ.get("RESULTS_PORT", "8080")))
        return 0
    finally:
        sync.stop()  # a no-op for a second run: it started no client


def submit_only(watch_seconds: float) -> int:
    """`federation submit`: steps 1–6 only, then report each job's status for a while.

    For a person (or a test) checking what an owner does with a job; runs no server.
    """
    settings = ScientistSettings.from_env()
    sync = SyncClient(settings.party)
    owners = [Owner(e) for e in settings.datasites]
    try:
        sync.start()
        sync.ensure_keys()
        prepare_and_submit(settings, sync, owners, lambda name, fn, *args: fn(*args))
        deadline = time.monotonic() + watch_seconds
        while time.monotonic() < deadline:
            for o in owners:
                refresh(o)
            time.sleep(1)
    except (WorkflowError, TimeoutError) as e:
        log.error("%s", e)
        return 1
    finally:
        sync.stop()
    print("RESULT " + json.dumps({o.email: {"job": o.job.uid.hex if o.job else None, "status": o.status,
                                "reason": o.reason} for o in owners}))
    return 0
