"""The DS's workflow, step by step, as plain functions (the seed's steps 4 to 8).

bootstrap a copy of the app → submit it to every owner → wait for the owners' runners to
approve it → (the Flower server: flower_server.py) → wait for every job's final status →
check who replied (from the Flower messages: replies.py). An app with a preview module (the
bundled one) runs its statistics on the mocks meanwhile.
"""

from __future__ import annotations

import json
import logging
import re
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
from federation.scientist.replies import Round, replied_every_round
from federation.scientist.session import OwnerSession, mock_dirs, refresh

log = logging.getLogger(__name__)

# Called with the stage and the owners whenever the DS looked at their jobs (progress lines).
Watcher = Callable[[str, list[OwnerSession]], None]


def _unwatched(stage: str, owners: list[OwnerSession]) -> None:
    pass


def check_app(fed_app: Path) -> dict:
    """The app's pyproject.toml, once it is a Flower app syft_flwr can bootstrap; else WorkflowError."""
    import tomllib

    pyproject = fed_app / "pyproject.toml"
    if not pyproject.is_file():
        raise WorkflowError(f"the app folder {fed_app} has no pyproject.toml (FED_APP: a folder holding a "
                            "syft_flwr app)")
    try:
        config = tomllib.loads(pyproject.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise WorkflowError(f"{pyproject}: not valid TOML ({e})") from None
    components = config.get("tool", {}).get("flwr", {}).get("app", {}).get("components", {})
    missing = [c for c in ("serverapp", "clientapp") if c not in components]
    if missing:
        raise WorkflowError(f"{pyproject}: no [tool.flwr.app.components] {' and '.join(missing)}: not a Flower app")
    return config


def bootstrap_copy(fed_app: Path, run_dir: Path, aggregator: str, datasites: list[str]) -> Path:
    """A fresh copy of the app in `run_dir`, bootstrapped for this aggregator and these owners."""
    import syft_flwr

    check_app(fed_app)
    app_dir = run_dir / "fed_app"
    shutil.copytree(fed_app, app_dir,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "results", "main.py", ".*"))
    syft_flwr.bootstrap(app_dir, aggregator=aggregator, datasites=datasites)
    return app_dir


def bootstrap(settings: ScientistSettings, run_dir: Path) -> Path:
    return bootstrap_copy(settings.fed_app, run_dir, settings.party.email, settings.datasites)


def submit(settings: ScientistSettings, app_dir: Path, owner: OwnerSession) -> None:
    import tomllib

    project = tomllib.loads((app_dir / "pyproject.toml").read_text()).get("project", {})
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", str(project.get("name") or "fed-app"))
    owner.job = owner.session.job.submit(
        name=f"{name}-{app_dir.parent.name}", user_code_path=str(app_dir),
        dataset_name=settings.dataset, entrypoint="main.py",
        description=str(project.get("description") or f"the Flower app {name}"),
    )
    owner.status = owner.job.status.value
    log.info("%s: job %s submitted", owner.email, owner.job.uid.hex[:8])


# How often the DS reads its jobs' statuses from its synced copy of each owner's store (local
# files: a status that has synced is seen this much later at most).
STATUS_POLL = 0.2
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
        time.sleep(STATUS_POLL)


def wait_until_done(owners: list[OwnerSession], watch: Watcher = _unwatched, timeout: float = 30) -> None:
    """Record each owner's final job status (it syncs back a moment after the round)."""
    def done() -> bool:
        finished = all((s := JobStatus.of(refresh(o))) is not None and s.ended for o in owners)
        watch("finish", owners)
        return finished

    try:
        wait_for(done, timeout, "the owners' final job status", STATUS_POLL)
    except TimeoutError as e:
        log.warning("%s; recording the last status seen", e)


def check_replies(settings: ScientistSettings, rounds: list[Round]) -> tuple[list[str], list[str]]:
    """Who replied (a usable reply in every round that asked it) and who is missing, from the
    Flower messages; fewer than MIN_REPLIES repliers do not count."""
    if not rounds:
        raise WorkflowError("the Flower server sent no question to any owner (see server.log in the results)")
    replied = [e for e in settings.datasites if e in replied_every_round(rounds)]
    missing = [e for e in settings.datasites if e not in replied]
    if len(replied) < settings.min_replies:
        asked = {e for r in rounds for e in r.asked}
        why = [f"round {r.number}: " + ", ".join(
            [f"{e} answered with an error: {first_line(err)}" for e, err in r.errors.items()]
            + [f"no reply from {e}" for e in r.silent]) for r in rounds if r.errors or r.silent]
        never = [e for e in missing if e not in asked]
        if never:
            why.append(f"never asked (sending to it failed: see server.log): {', '.join(never)}")
        raise WorkflowError(f"only {len(replied)} of {len(settings.datasites)} owners replied, {settings.min_replies} "
                            f"needed (MIN_REPLIES); {'; '.join(why)}")
    if missing:
        log.warning("no usable reply from %s: the results count the other %d owner(s)", ", ".join(missing),
                    len(replied))
    return replied, missing


def first_line(text: str, limit: int = 200) -> str:
    """An owner's error as one short line (syft_flwr sends the ClientApp's whole traceback)."""
    line = next((part.strip() for part in str(text).splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[:limit] + "…"


def read_aggregate(settings: ScientistSettings) -> dict | None:
    """The bundled app's aggregate.json (its contract with the page), when the app wrote one."""
    path = settings.results_dir / "aggregate.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def preview_module(fed_app: Path) -> str | None:
    """`<package>.preview` when the app has one (the bundled app does: its statistics on the
    mocks, for the page to show beside the real ones)."""
    import tomllib

    try:
        server = tomllib.loads((fed_app / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["components"][
            "serverapp"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return None
    package = server.split(":")[0].split(".")[0]
    return f"{package}.preview" if (fed_app / package / "preview.py").is_file() else None


# The preview runs while the owners' jobs end, after the round: it is not what the DS waits for.
PREVIEW_NICE = 10


def start_mock_preview(settings: ScientistSettings, owners: list[OwnerSession]) -> subprocess.Popen | None:
    """The app's statistics on the owners' mocks (results/mock/), for the page to show beside
    the real ones; runs once the round is over, while the owners' jobs end. None: the app has
    no preview."""
    module = preview_module(settings.fed_app)
    if module is None:
        return None
    out = settings.results_dir / "mock"
    shutil.rmtree(out, ignore_errors=True)
    with open(settings.party.state_dir / "mock-preview.log", "wb") as log_file:  # the child keeps its copy
        # `nice` (coreutils) rather than a preexec_fn: this process runs threads, and a fork
        # that runs Python code before exec is not safe then.
        return subprocess.Popen(["nice", "-n", str(PREVIEW_NICE), sys.executable, "-m", module, str(out),
                                 *map(str, mock_dirs(settings, owners))],
                                cwd=settings.fed_app, env=child_environment(DATASET_NAME=settings.dataset),
                                stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def finish_mock_preview(proc: subprocess.Popen | None, settings: ScientistSettings, timeout: float = 120) -> None:
    """Wait for the preview; one that fails or takes longer than `timeout` is stopped, with a
    warning: the page then says there is no mock figure, and the run still counts."""
    if proc is None:
        return
    try:
        failed = proc.wait(timeout=timeout) != 0
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        failed = True
    if failed:
        log.warning("no mock preview: see %s", settings.party.state_dir / "mock-preview.log")
