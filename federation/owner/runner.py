"""The data owner's job runner: the policy (or a person) decides, approved jobs run.

A job runs only when its stored status is `approved` (syft-rds 0.4.0's own
`run_private` would run a pending job too). It runs in this container's
environment (`python <entrypoint>`, no fresh venv), from a copy of its code
outside the synced tree, in a process session of its own, with a time limit; at
the end everything it started is stopped. Its output and logs stay in the owner's
state folder.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from pathlib import Path

from federation.common.processes import run_in_own_session
from federation.common.settings import Policy, child_environment
from federation.common.statuses import JobStatus
from federation.owner import jobs
from federation.owner.policy import Decision, Verdict, decide

log = logging.getLogger(__name__)

STOP_GRACE = 2.0  # s between SIGTERM and SIGKILL for what a job leaves running


class NotApproved(RuntimeError):
    pass


class JobFailed(RuntimeError):
    """The job cannot run as submitted; the message is the reason its submitter sees."""


def last_error(stderr_log: Path) -> str:
    """The line of a job's stderr that says what went wrong (a traceback ends with it)."""
    lines = [line.strip() for line in stderr_log.read_text(errors="replace").splitlines() if line.strip()]
    reason = lines[-1] if lines else "no output on stderr"
    return f"{reason[:300]} (log on the owner: {stderr_log})"


class Runner:
    def __init__(self, rds, sync, policy: Policy, state_dir: Path, job_timeout: float):
        self.rds = rds  # the owner's admin RDS session
        self.sync = sync  # federation.common.syftbox.SyncClient
        self.policy = policy
        self.records = jobs.Records(state_dir)
        self.jobs_dir = self.records.root
        self.job_timeout = job_timeout

    def serve_forever(self, poll: float = 1.0) -> None:
        self.close_interrupted()
        p = self.policy
        log.info("runner: %s approval%s", p.mode, "" if p.mode == "manual" else
                 f" for {', '.join(p.allowlist)}" + (f", {len(p.pinned_hashes)} pinned code hash(es)"
                                                      if p.pinned_hashes else "") + f"; others {p.otherwise}")
        while True:
            self.sync.check_alive()
            self.serve_once()
            time.sleep(poll)

    def serve_once(self) -> None:
        for job in self.rds.job.get_all():
            try:
                if jobs.status(job) is JobStatus.PENDING:
                    self.review(job)
                if jobs.status(job) is JobStatus.APPROVED:
                    self.run(job)
            except NotApproved as e:
                log.warning("%s", e)
            except JobFailed as e:
                log.error("job %s: %s", job.uid.hex[:8], e)
                self._fail(job, str(e))
            except Exception as e:  # one bad job must not stop the owner serving the next
                log.error("job %s: %s: %s", job.uid.hex[:8], type(e).__name__, e)
                self._fail(job, f"{type(e).__name__}: {e}")

    def close_interrupted(self) -> None:
        """A job still `job_in_progress` when the runner starts ran in a previous life of this
        owner (it runs one job at a time): it will never finish, so say so."""
        for job in self.rds.job.get_all():
            if jobs.status(job) is JobStatus.RUNNING:
                log.warning("job %s was running when this owner stopped: marking it failed", job.uid.hex[:8])
                self._fail(job, "interrupted: the data owner restarted while the job ran")

    def review(self, job) -> None:
        """Decide once per job; a job left pending waits for a person."""
        if "decision" in self.records.read(job):
            return
        digest = jobs.job_code_hash(self.rds, job)
        known = {d.name for d in self.rds.dataset.get_all()}
        if job.dataset_name not in known:  # no policy can make this job runnable here
            decision = Decision(Verdict.REJECT, f"no dataset named {job.dataset_name!r} on this datasite "
                                                f"(it has: {', '.join(sorted(known)) or 'none'})")
        else:
            decision = decide(self.policy, job.created_by, digest)
        self.records.update(job, "code_hash", digest)
        jobs.record_decision(self.rds, self.records, job, decision.verdict, decision.reason, by="policy")
        how = {Verdict.APPROVE: "approved", Verdict.REJECT: "rejected", Verdict.HOLD: "left pending"}
        (log.info if decision.approve else log.warning)(
            "job %s from %s %s: %s", job.uid.hex[:8], job.created_by, how[decision.verdict], decision.reason)

    def run(self, job) -> None:
        job = self.rds.job.get(uid=job.uid)  # the stored status, not a cached one
        if jobs.status(job) is not JobStatus.APPROVED:
            raise NotApproved(f"job {job.uid.hex} has status {job.status.value}; only approved jobs run")
        user_code = self.rds.user_code.get(uid=job.user_code_id)
        entrypoint = user_code.entrypoint
        if not (Path(user_code.local_dir) / entrypoint).is_file():
            raise JobFailed(f"the job has no {entrypoint} (its entrypoint) in its code")
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
        env = child_environment(
            SYFTBOX_CLIENT_CONFIG_PATH=str(self.sync.party.config_path),
            DATA_DIR=str(data_dir), OUTPUT_DIR=str(out / "output"), CODE_DIR=str(code_dir),
            PYTHONDONTWRITEBYTECODE="1",
        )
        started = time.time()
        code, _ = run_in_own_session([sys.executable, entrypoint], env=env, cwd=code_dir,
                                     stdout=out / "stdout.log", stderr=out / "stderr.log",
                                     timeout=self.job_timeout, grace=STOP_GRACE)
        if code is None:
            code, error = -1, f"stopped after the owner's limit of {self.job_timeout:g} s"
        else:
            error = None if code == 0 else f"exit code {code}: {last_error(out / 'stderr.log')}"
        update = job.get_update_for_return_code(return_code=code, error_message=error)
        self.rds.job.update_job_status(update, job)
        self.records.update(job, "run", {"return_code": code, "error": error,
                                         "seconds": round(time.time() - started, 1)})
        (log.info if code == 0 else log.error)(
            "job %s finished: %s", job.uid.hex[:8], "ok" if code == 0 else error
        )

    def _fail(self, job, error: str) -> None:
        self.records.update(job, "run", {"return_code": None, "error": error})
        try:
            self.rds.job.update_job_status(job.get_update_for_return_code(return_code=1, error_message=error), job)
        except Exception as e:
            log.error("job %s: could not record the failure: %s", job.uid.hex[:8], e)
