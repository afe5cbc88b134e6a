"""The data owner's job runner: policy decides, approved jobs run on private data.

A job runs only when its stored status is `approved` (syft-rds 0.4.0's own
`run_private` would run a pending job too). It runs in this container's
environment (`python <entrypoint>`, no fresh venv), with a time limit; its output
and logs stay in the owner's state folder, outside the synced tree.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from federation.policy import decide

log = logging.getLogger(__name__)

PENDING = "pending_code_review"
APPROVED = "approved"


class NotApproved(RuntimeError):
    pass


def _kill_group(proc: subprocess.Popen) -> None:
    """Stop the job and whatever it left running (its process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


class Runner:
    def __init__(self, rds, sync, allowlist: list[str], state_dir: Path, job_timeout: float):
        self.rds = rds  # the owner's admin RDS session
        self.sync = sync  # federation.network.SyncClient
        self.allowlist = allowlist
        self.jobs_dir = state_dir / "jobs"
        self.job_timeout = job_timeout
        self._left_pending: set[str] = set()

    def serve_forever(self, poll: float = 1.0) -> None:
        log.info("runner: approving jobs from %s", ", ".join(self.allowlist))
        while True:
            self.sync.check_alive()
            self.serve_once()
            time.sleep(poll)

    def serve_once(self) -> None:
        for job in self.rds.job.get_all():
            try:
                status = job.status.value
                if status == PENDING:
                    self.review(job)
                    status = job.status.value
                if status == APPROVED:
                    self.run(job)
            except NotApproved as e:
                log.warning("%s", e)
            except Exception as e:  # one bad job must not stop the owner serving the next
                log.error("job %s: %s: %s", job.uid.hex[:8], type(e).__name__, e)
                self._fail(job, f"{type(e).__name__}: {e}")

    def _fail(self, job, error: str) -> None:
        self._record(job, "run", {"return_code": None, "error": error})
        try:
            self.rds.job.update_job_status(job.get_update_for_return_code(return_code=1, error_message=error), job)
        except Exception as e:
            log.error("job %s: could not record the failure: %s", job.uid.hex[:8], e)

    def review(self, job) -> None:
        decision = decide(job.created_by, self.allowlist)
        self._record(job, "decision", {"approve": decision.approve, "reason": decision.reason})
        if decision.approve:
            log.info("job %s from %s approved: %s", job.uid.hex[:8], job.created_by, decision.reason)
            self.rds.job.approve(job)
        elif job.uid.hex not in self._left_pending:
            self._left_pending.add(job.uid.hex)
            log.warning("job %s from %s left pending: %s", job.uid.hex[:8], job.created_by, decision.reason)

    def run(self, job) -> None:
        job = self.rds.job.get(uid=job.uid)  # the stored status, not a cached one
        if str(job.status.value) != APPROVED:
            raise NotApproved(f"job {job.uid.hex} has status {job.status.value}; only approved jobs run")
        user_code = self.rds.user_code.get(uid=job.user_code_id)
        entrypoint = user_code.entrypoint
        data_dir = Path(self.rds.dataset.get(name=job.dataset_name).get_private_path())
        out = self.jobs_dir / job.uid.hex
        (out / "output").mkdir(parents=True, exist_ok=True)
        # The submitted code lives in the synced tree, readable by its submitter: run a copy
        # outside it, so nothing the job writes next to its code can sync anywhere.
        code_dir = out / "code"
        shutil.rmtree(code_dir, ignore_errors=True)
        shutil.copytree(user_code.local_dir, code_dir)
        self.sync.wait_for_public_key(job.created_by, timeout=60)

        self.rds.job.update_job_status(job.get_update_for_in_progress(), job)
        log.info("job %s running on private data (%s)", job.uid.hex[:8], code_dir / entrypoint)
        env = os.environ | {
            "DATA_DIR": str(data_dir),
            "OUTPUT_DIR": str(out / "output"),
            "CODE_DIR": str(code_dir),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        started = time.time()
        with open(out / "stdout.log", "wb") as stdout, open(out / "stderr.log", "wb") as stderr:
            # Its own process group, so the time limit stops everything the job started.
            proc = subprocess.Popen(
                [sys.executable, entrypoint], cwd=code_dir, env=env,
                stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, start_new_session=True,
            )
            try:
                code = proc.wait(timeout=self.job_timeout)
                error = None if code == 0 else f"exit code {code}; see {out / 'stderr.log'}"
            except subprocess.TimeoutExpired:
                code, error = -1, f"stopped after the owner's limit of {self.job_timeout:g} s"
            finally:
                _kill_group(proc)
        update = job.get_update_for_return_code(return_code=code, error_message=error)
        self.rds.job.update_job_status(update, job)
        self._record(job, "run", {"return_code": code, "error": error, "seconds": round(time.time() - started, 1)})
        (log.info if code == 0 else log.error)(
            "job %s finished: %s", job.uid.hex[:8], "ok" if code == 0 else error
        )

    def _record(self, job, key: str, value: dict) -> None:
        path = self.jobs_dir / job.uid.hex / "runner.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        record = json.loads(path.read_text()) if path.exists() else {
            "job": job.uid.hex, "name": job.name, "submitter": job.created_by, "dataset": job.dataset_name,
        }
        record[key] = value
        path.write_text(json.dumps(record, indent=2))
