"""The data scientist's whole workflow, unattended, against every data owner.

guest login to each owner → explore its mock (the private path is refused) →
bootstrap fed_app → submit a job to every owner (or find the submission a
restarted DS made before) → wait for their runners → Flower server → check who
replied → results served. While it waits it prints one compact line per change.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from federation import health
from federation.codehash import code_hash
from federation.network import SyncClient, wait_for
from federation.progress import Progress, rounds_done
from federation.settings import ScientistSettings

log = logging.getLogger(__name__)

RUNNING = {"approved", "job_in_progress"}
DONE = {"job_run_finished", "job_run_failed", "rejected"}


class WorkflowError(RuntimeError):
    """The run cannot count; the message says which owner and why."""


# Another dataset on the owner's datasite but not ours, this long: a typo, not a slow sync.
UNKNOWN_DATASET_GRACE = 15.0


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
        sync.wait(dataset_check(settings.dataset, owner), settings.wait_timeout,
                  f"dataset {settings.dataset!r} on {owner.email}", 0.5)
    except TimeoutError as e:
        raise WorkflowError(f"data owner {owner.email} never appeared: {e}") from None
    if owner.session.is_admin:
        raise WorkflowError(f"{settings.party.email} is admin on {owner.email}: expected a guest")
    owner.status = "logged in as guest"


def dataset_check(name: str, owner: Owner, grace: float = UNKNOWN_DATASET_GRACE):
    """A check for `wait`: true once `name` is on the owner's datasite; a clear error when the
    owner has published other datasets for `grace` seconds but never this one."""
    others_since = None

    def check() -> bool:
        nonlocal others_since
        names = sorted(d.name for d in owner.session.dataset.get_all())
        if name in names:
            return True
        if names:
            others_since = others_since or time.monotonic()
            if time.monotonic() - others_since > grace:
                raise WorkflowError(f"{owner.email} has no dataset {name!r}; it publishes: {', '.join(names)}")
        return False

    return check


def mock_dirs(settings: ScientistSettings, owners: list[Owner]) -> list[Path]:
    return [Path(o.session.dataset.get(name=settings.dataset).get_mock_path()) for o in owners]


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
    try:
        job = owner.session.job.get(uid=owner.job.uid)
    except Exception as e:  # its record may be mid-sync (half a file): keep the last status seen
        log.debug("%s: job %s not readable now: %s", owner.email, owner.job.uid.hex[:8], e)
        return owner.status
    if job.status.value != owner.status:
        owner.status = job.status.value
        owner.reason = job.error_message or ""
        log.debug("%s: job %s %s%s", owner.email, job.uid.hex[:8], owner.status,
                  f" ({owner.reason})" if owner.reason else "")
    return owner.status


def show(progress: Progress | None, stage: str, owners: list[Owner], rounds: tuple[int, int] | None = None) -> None:
    if progress is not None:
        progress.show(stage, {o.email: (o.status, o.reason) for o in owners}, rounds)


def wait_until_running(settings: ScientistSettings, owners: list[Owner], sync: SyncClient,
                       progress: Progress | None = None) -> None:
    """Every owner's runner has approved the job (or we fail naming who did not)."""
    deadline = time.monotonic() + settings.wait_timeout
    while True:
        sync.check_alive()
        statuses = {o.email: refresh(o) for o in owners}
        show(progress, "approval", owners)
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


def wait_until_done(owners: list[Owner], progress: Progress | None = None, timeout: float = 30) -> None:
    """Record each owner's final job status (it syncs back a moment after the round)."""
    def done() -> bool:
        finished = all(refresh(o) in DONE for o in owners)
        show(progress, "finish", owners)
        return finished

    try:
        wait_for(done, timeout, "the owners' final job status", 0.5)
    except TimeoutError as e:
        log.warning("%s; recording the last status seen", e)


SERVER_ERROR = re.compile(r"Server encountered an error: (.*)")


def server_rounds(app_dir: Path) -> int:
    config = tomllib.loads((app_dir / "pyproject.toml").read_text())
    return int(config["tool"]["flwr"]["app"]["config"].get("num-server-rounds", 1))


def run_server(settings: ScientistSettings, app_dir: Path, run_dir: Path, owners: list[Owner] = (),
               progress: Progress | None = None, rounds_seen=lambda done, total: None) -> None:
    """The Flower server, in this environment (no fresh venv), writing into the results folder."""
    env = os.environ | {
        "RESULTS_DIR": str(settings.results_dir),
        "DATASITES": ",".join(settings.datasites),
        "DATASET_NAME": settings.dataset,
        "SYFT_FLWR_MSG_TIMEOUT": str(settings.round_timeout),
        "MIN_REPLIES": str(settings.min_replies),
    }
    server_log = run_dir / "server.log"
    total = server_rounds(app_dir)
    with open(server_log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "main.py"], cwd=app_dir, env=env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            while proc.poll() is None:
                for o in owners:
                    refresh(o)
                rounds_seen(rounds_done(server_log), total)
                show(progress, "server", owners, (rounds_done(server_log), total))
                time.sleep(0.5)
        finally:
            if proc.poll() is None:  # we are being stopped: do not leave the server behind
                proc.terminate()
                proc.wait()
    rounds_seen(rounds_done(server_log), total)
    show(progress, "server", owners, (rounds_done(server_log), total))
    text = server_log.read_text(errors="replace")
    if proc.returncode != 0:
        raise WorkflowError(f"Flower server exited with {proc.returncode}:\n" + "\n".join(text.splitlines()[-15:]))
    # syft-flwr catches an error of the ServerApp, logs it, stops the clients and exits 0.
    failed = SERVER_ERROR.search(text)
    if failed:
        raise WorkflowError(f"the Flower server failed: {failed.group(1).strip()}")


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


def start_mock_preview(settings: ScientistSettings, owners: list[Owner]) -> subprocess.Popen:
    """The app's statistics on the owners' mocks (results/mock/), for the page to show beside
    the real ones; runs while the owners review the job."""
    out = settings.results_dir / "mock"
    shutil.rmtree(out, ignore_errors=True)
    with open(settings.party.state_dir / "mock-preview.log", "wb") as log_file:  # the child keeps its copy
        return subprocess.Popen([sys.executable, "-m", "fed_app.preview", str(out),
                                 *map(str, mock_dirs(settings, owners))],
                                cwd=settings.fed_app, env=os.environ | {"DATASET_NAME": settings.dataset},
                                stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def finish_mock_preview(proc: subprocess.Popen, settings: ScientistSettings) -> None:
    if proc.wait(timeout=120) != 0:  # the page then says there is no mock figure; the run still counts
        log.warning("no mock preview: see %s", settings.party.state_dir / "mock-preview.log")


def archive_previous(results: Path) -> None:
    """Keep earlier results under history/ instead of overwriting them."""
    previous = [results / n for n in ("aggregate.json", "figures", "mock", "run.json") if (results / n).exists()]
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


def submission_file(settings: ScientistSettings) -> Path:
    return settings.party.state_dir / "submission.json"


def save_submission(settings: ScientistSettings, app_dir: Path, owners: list[Owner]) -> None:
    path = submission_file(settings)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"app_dir": str(app_dir), "app_hash": code_hash(settings.fed_app),
                               "datasites": settings.datasites, "jobs": {o.email: o.job.uid.hex for o in owners}}))
    tmp.replace(path)


def resume_submission(settings: ScientistSettings, owners: list[Owner]) -> Path | None:
    """The app folder of a submission this DS made before it was restarted, when every job of
    it is still alive at its owner (same owners, same app); None means submit afresh."""
    try:
        saved = json.loads(submission_file(settings).read_text())
    except (OSError, ValueError):
        return None
    app_dir = Path(saved.get("app_dir", ""))
    if (saved.get("datasites") != settings.datasites or not app_dir.is_dir()
            or saved.get("app_hash") != code_hash(settings.fed_app)):
        return None
    found = {}
    for o in owners:
        try:
            job = o.session.job.get(uid=uuid.UUID(saved["jobs"][o.email]))
        except Exception:  # not in the owner's store (any more): nothing to resume
            return None
        if job.status.value in DONE:
            return None
        found[o.email] = job
    for o in owners:
        o.job, o.status, o.reason = found[o.email], found[o.email].status.value, found[o.email].error_message or ""
    log.info("found this DS's earlier submission (jobs %s): waiting for it instead of submitting again",
             ", ".join(j.uid.hex[:8] for j in found.values()))
    return app_dir


def prepare_and_submit(settings: ScientistSettings, sync: SyncClient, owners: list[Owner], step,
                       resume: bool = False) -> Path:
    """Steps 1–6: log in, explore, bootstrap, submit (or, with `resume`, find the earlier
    submission); returns the bootstrapped app folder."""
    step("login", for_each, owners, login, sync, settings)
    step("explore", for_each, owners, explore, settings)
    app_dir = resume_submission(settings, owners) if resume else None
    if app_dir is None:
        run_dir = settings.party.state_dir / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        run_dir.mkdir(parents=True)
        app_dir = step("bootstrap", bootstrap, settings, run_dir)
        step("submit", for_each, owners, submit, settings, app_dir)
        if resume:
            save_submission(settings, app_dir, owners)
    return app_dir


def workflow(settings: ScientistSettings, sync: SyncClient, record: dict) -> None:
    owners = [Owner(e) for e in settings.datasites]
    record["owners"] = {o.email: {"status": o.status} for o in owners}
    progress = Progress(settings.datasites, logging.getLogger("federation.progress").info)

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

    def note_rounds(done: int, total: int):
        if record.get("rounds") != {"done": done, "total": total}:
            record["rounds"] = {"done": done, "total": total}
            note_owners()

    try:
        app_dir = prepare_and_submit(settings, sync, owners, step, resume=True)
        record["resumed"] = "submit" not in record["steps"]
        show(progress, "submitted", owners)
        mock_preview = start_mock_preview(settings, owners)
        note_owners()
        step("approval", wait_until_running, settings, owners, sync, progress)
        note_owners()
        step("server", run_server, settings, app_dir, app_dir.parent, owners, progress, note_rounds)
        aggregate, missing = check_replies(settings)
        record.update(datasites=aggregate["datasites"], missing_datasites=missing)
        step("finish", wait_until_done, [o for o in owners if o.email not in missing], progress)
        finish_mock_preview(mock_preview, settings)
    finally:
        for o in owners:
            if o.job is not None:
                refresh(o)  # never raises: a status it cannot read stays the last one seen
        note_owners()


def main() -> int:
    settings = ScientistSettings.from_env()
    sync = SyncClient(settings.party)
    # A second run in the same container (`docker exec ds federation ds`) shares the running
    # SyftBox client; the container's health and the results page stay its main process's.
    second_run = sync.running_here()
    report = health.report if not second_run else (lambda *args: None)
    report("starting")
    settings.results_dir.mkdir(parents=True, exist_ok=True)
    archive_previous(settings.results_dir)
    record = {"status": "running", "started": time.time(), "steps": {}, "datasites_expected": settings.datasites}
    write_run(settings, record)
    if not second_run:  # the page follows this run, and every later one, as it goes
        from federation.web import serve_results

        serve_results(settings.results_dir, port=int(os.environ.get("RESULTS_PORT", "8080")))

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
        code = 1
    else:
        record.update(status="ok", finished=time.time())
        write_run(settings, record)
        log.info("run ok in %.1f s: %s; results in %s", record["finished"] - record["started"],
                 f"no reply from {', '.join(record['missing_datasites'])}" if record["missing_datasites"]
                 else "every owner replied", settings.results_dir)
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
