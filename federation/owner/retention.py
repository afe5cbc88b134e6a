"""Retention: what an ended job leaves in the owner's synced tree moves to the owner's state.

Each job leaves files in the datasite that every client syncs and the sync server mirrors: its
record and its code's record (`app_data/RDS/store/{job,usercode}/`), the code copy and the
output folder (`app_data/RDS/user_files/<submitter>/{UserCode,Job}/<id>/`) and its Flower
messages' folder (`app_data/flwr/<app name>/`). Every sync loop, and the runner's listing of
the jobs, went over all of them again, so each run was slower than the one before.

Once a job has ended (finished, failed or rejected) `SYNCED_RETENTION` ago, they move to the
job's own folder in the owner's state, `jobs/<id>/synced/`, beside the runner's record and logs:
the owner's job history and audit keep them, and `datasite jobs` and `datasite show` read them
there. The move is local; the SyftBox client then removes them from the sync server and from
the DS's copy. Files of syft-rds's RPC that nobody collected (the sender deletes what it read)
move to `rpc/` in the state once older than an hour: every request expires sooner.

The folder is read as files (the RDS server's store layout, syft-rds's models), not through
the RDS server: an ended job changes no more, and nothing here waits on a sync.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from federation.common.statuses import JobStatus

log = logging.getLogger(__name__)

RPC_DEAD_AFTER = 3600.0  # s: syft-rds's requests expire within 5 min; these are nobody's
SYNCED = "synced"  # a job's folder of moved files, in its state folder


@dataclass(frozen=True)
class Layout:
    """Where syft-rds 0.4.0 keeps a datasite's records, files and messages."""

    datasites: Path  # the SyftBox client's datasites folder
    email: str  # the owner's

    @property
    def datasite(self) -> Path:
        return self.datasites / self.email

    @property
    def rds(self) -> Path:
        return self.datasite / "app_data" / "RDS"

    def store(self, model) -> Path:
        """The folder of a syft-rds model's records (its schema name: `job`, `usercode`)."""
        return self.rds / "store" / model.__schema_name__

    def flwr_app(self, app_name: str) -> Path:
        return self.datasite / "app_data" / "flwr" / app_name


def _load(model, path: Path):
    import yaml

    try:
        return model.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, ValueError, yaml.YAMLError):  # being written, or torn: the next sweep sees it
        return None


def _app_name(code: Path) -> str | None:
    from federation.owner.runner import JobFailed, app_name_of

    try:
        name = app_name_of(code)
    except (JobFailed, TypeError):
        return None
    # a name that is a path would move more than its own folder
    return name if isinstance(name, str) and name and "/" not in name and name not in (".", "..") else None


def _move(source: Path, dest: Path) -> bool:
    if not source.exists():
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():  # moved before, and the client synced it back meanwhile: keep the first
        shutil.rmtree(source) if source.is_dir() else source.unlink()
    else:
        shutil.move(source, dest)
    return True


def moved_jobs(state_dir: Path) -> list:
    """Every job whose files were moved here, as syft-rds's Job (`datasite jobs` lists them)."""
    from syft_rds.models import Job

    return [j for j in (_load(Job, p) for p in sorted((state_dir / "jobs").glob(f"*/{SYNCED}/job.yaml"))) if j]


def synced_dir(state_dir: Path, job_hex: str) -> Path:
    """A job's folder of moved files, in the owner's state (beside the runner's record)."""
    return state_dir / "jobs" / job_hex / SYNCED


def moved_code(state_dir: Path, job) -> Path:
    """Where a moved job's code copy is now."""
    return synced_dir(state_dir, job.uid.hex) / "code"


def is_moved(state_dir: Path, job) -> bool:
    return (synced_dir(state_dir, job.uid.hex) / "job.yaml").is_file()


def every_job(live: list, state_dir: Path) -> list:
    """The jobs in the RDS store, then the moved ones it no longer holds."""
    known = {j.uid for j in live}
    return [*live, *(j for j in moved_jobs(state_dir) if j.uid not in known)]


class Retention:
    def __init__(self, layout: Layout, state_dir: Path, seconds: float):
        self.layout = layout
        self.state_dir = state_dir
        self.rpc_root = state_dir / "rpc"
        self.seconds = seconds

    def sweep(self, now: float | None = None) -> list[str]:
        """Move the files of every job that ended `seconds` ago; the ids of the jobs moved."""
        from syft_rds.models import Job, UserCode

        now = time.time() if now is None else now
        jobs = [j for j in (_load(Job, p) for p in sorted(self.layout.store(Job).glob("*.yaml"))) if j]
        ended = [j for j in jobs if (s := JobStatus.of(j.status)) and s.ended
                 and now - j.updated_at.timestamp() >= self.seconds]
        ended_ids = {j.uid for j in ended}
        live = [j for j in jobs if j.uid not in ended_ids]
        live_codes = {j.user_code_id for j in live}
        live_apps = {self._app_of(j.user_code_id) for j in live}
        moved = []
        for job in ended:
            code_record = self.layout.store(UserCode) / f"{job.user_code_id}.yaml"
            code = _load(UserCode, code_record)
            code_dir = self._local(code.dir_url) if code and code.dir_url else None
            app_name = _app_name(code_dir) if code_dir else None
            dest = synced_dir(self.state_dir, job.uid.hex)
            # the code's record and copy stay while a job not yet moved shares them
            shared = job.user_code_id in live_codes
            if not shared and code_dir:
                _move(code_dir, dest / "code")
            if job.output_url is not None and (output := self._local(job.output_url)):
                _move(output, dest / "output")
            if app_name and app_name not in live_apps:
                _move(self.layout.flwr_app(app_name), dest / "flower")
            if not shared:
                _move(code_record, dest / "user_code.yaml")
            # the job's record last: a sweep stopped half-way finds the job again and finishes
            _move(self.layout.store(Job) / f"{job.uid}.yaml", dest / "job.yaml")
            moved.append(job.uid.hex)
            log.info("job %s: its synced files moved to %s (ended %.0f s ago; SYNCED_RETENTION %g s)",
                     job.uid.hex[:8], dest, now - job.updated_at.timestamp(), self.seconds)
        self.sweep_rpc(now)
        return moved

    def sweep_rpc(self, now: float) -> int:
        """Requests and responses of syft-rds's RPC that nobody collected, once dead."""
        rpc = self.layout.rds / "rpc"
        count = 0
        for path in list(rpc.rglob("*.request")) + list(rpc.rglob("*.response")):
            try:
                old = now - path.stat().st_mtime >= max(self.seconds, RPC_DEAD_AFTER)
            except OSError:  # collected meanwhile
                continue
            if old and _move(path, self.rpc_root / path.relative_to(rpc)):
                count += 1
        if count:
            log.info("%d uncollected RPC file(s) moved to %s", count, self.rpc_root)
        return count

    def _local(self, url) -> Path | None:
        """The folder a record points at, if it is one of this owner's user files (else None:
        nothing outside them is ever moved)."""
        path = Path(url.to_local_path(self.layout.datasites))
        files = (self.layout.rds / "user_files").resolve()
        return path if path.is_relative_to(files) and path != files else None

    def _app_of(self, user_code_id) -> str | None:
        from syft_rds.models import UserCode

        code = _load(UserCode, self.layout.store(UserCode) / f"{user_code_id}.yaml")
        code_dir = self._local(code.dir_url) if code and code.dir_url else None
        return _app_name(code_dir) if code_dir else None
