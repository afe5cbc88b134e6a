"""The DS's session with each data owner: a guest login, the mock explored (the private part
refused), the job's status as the owner's store says.

An `OwnerSession` is what the DS knows of one owner during a run; `for_each` runs a step for
every owner at once, since each waits on its own owner's sync.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from federation.common.settings import ScientistSettings
from federation.common.statuses import JobStatus
from federation.common.syftbox import SyncClient
from federation.scientist.errors import WorkflowError
from federation.scientist.run_record import OwnerRecord

log = logging.getLogger(__name__)

# Another dataset on the owner's datasite but not ours, this long: a typo, not a slow sync.
UNKNOWN_DATASET_GRACE = 15.0


@dataclass
class OwnerSession:
    email: str
    session: object = None  # the guest's syft-rds session
    job: object = None  # our job on this owner, once submitted
    mock_rows: int = 0
    status: str = JobStatus.NOT_CONTACTED.value
    reason: str = ""

    def record(self) -> OwnerRecord:
        return OwnerRecord(self.status, self.reason, self.mock_rows)


def for_each(owners: list[OwnerSession], fn, *args) -> None:
    """Run `fn(*args, owner)` for every owner at once: each waits on its own owner's sync."""
    with ThreadPoolExecutor(max_workers=len(owners)) as pool:
        for future in [pool.submit(fn, *args, o) for o in owners]:
            future.result()


def import_libraries() -> None:
    """Import syft-rds and syft_flwr (seconds) in the calling thread. Call it before starting the
    threads that use them (the owners' logins, the bootstrap): imported from several threads at
    once, a dependency they share (IPython) was met half imported by a circular import, and a
    run failed with an ImportError (seen with 8 owners)."""
    import syft_flwr  # noqa: F401
    import syft_rds  # noqa: F401


def guest_session(settings: ScientistSettings, email: str):
    import syft_rds

    return syft_rds.init_session(host=email, syftbox_client_config_path=settings.party.config_path)


def login(sync: SyncClient, settings: ScientistSettings, owner: OwnerSession) -> None:
    """Guest session on the owner's datasite, once its dataset has synced here."""
    deadline = time.monotonic() + settings.wait_timeout

    def left() -> float:
        return max(0.0, deadline - time.monotonic())

    try:
        sync.wait_for_public_key(owner.email, left())
        owner.session = guest_session(settings, owner.email)
        sync.wait(dataset_check(settings.dataset, owner), left(), f"dataset {settings.dataset!r} on {owner.email}", 0.2)
        # The dataset's record syncs before its mock's files: explore must not count an empty mock.
        sync.wait(lambda: synced_mock(owner.session, settings.dataset) is not None, left(),
                  f"the mock of {settings.dataset!r} on {owner.email} to sync", 0.2)
    except TimeoutError as e:
        raise WorkflowError(f"data owner {owner.email} never appeared: {e}") from None
    if owner.session.is_admin:
        raise WorkflowError(f"{settings.party.email} is admin on {owner.email}: expected a guest")
    owner.status = JobStatus.GUEST.value


def dataset_check(name: str, owner: OwnerSession, grace: float = UNKNOWN_DATASET_GRACE):
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


def synced_mock(session, dataset: str) -> Path | None:
    """The dataset's mock folder once it holds a file of the mock's own. The record syncs before
    the files, and the dataset's README (in the same folder, and smaller: the client downloads
    the smallest first) before the mock's."""
    try:
        record = session.dataset.get(name=dataset)
        mock = Path(record.get_mock_path())
    except FileNotFoundError:
        return None
    readme = mock / Path(str(record.readme)).name if record.readme else None
    return mock if any(p.is_file() and p != readme for p in mock.rglob("*")) else None


def mock_dirs(settings: ScientistSettings, owners: list[OwnerSession]) -> list[Path]:
    return [Path(o.session.dataset.get(name=settings.dataset).get_mock_path()) for o in owners]


def explore(settings: ScientistSettings, owner: OwnerSession) -> None:
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


def refresh(owner: OwnerSession) -> str:
    """The job's status as the owner's store says now; never raises."""
    try:
        job = owner.session.job.get(uid=owner.job.uid)
    except Exception as e:  # its record may be mid-sync (half a file): keep the last status seen
        log.debug("%s: job %s not readable now: %s", owner.email, owner.job.uid.hex[:8], e)
        return owner.status
    if job is None:  # gone from the owner's synced store: it ended long ago (the owner's SYNCED_RETENTION)
        return owner.status
    if job.status.value != owner.status:
        owner.status = job.status.value
        owner.reason = job.error_message or ""
        log.debug("%s: job %s %s%s", owner.email, job.uid.hex[:8], owner.status,
                  f" ({owner.reason})" if owner.reason else "")
    return owner.status


def attach(settings: ScientistSettings, timeout: float | None = None) -> SyncClient:
    """The SyftBox client that runs for this DS in this container (the ds container's own), once
    it answers; a notebook or a second command works through it, never starts a second one."""
    from federation.common.syftbox import point_libraries_at, wait_for

    point_libraries_at(settings.party)
    sync = SyncClient(settings.party)
    wait_for(sync.running_here, settings.wait_timeout if timeout is None else timeout,
             "the DS's SyftBox client in the ds container")
    return sync
