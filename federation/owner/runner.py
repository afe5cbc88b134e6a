"""The data owner's job runner: the policy (or a person) decides, approved jobs run confined.

A job runs only when its stored status is `approved` (syft-rds 0.4.0's own `run_private`
would run a pending job too). It runs in the owner's executor container (`executor`: no
network, no credentials, read-only code and data, limits), from copies of its code and of the
private data on the jobs volume, the only thing the two containers share. Its Flower traffic
goes through this process (`relay`): the job's replies pass the owner's rules and the audit
before they are encrypted for the DS. Its logs stay in the owner's state folder.

It is longer than 300 lines because it is one job's whole life, review to clean-up, with
the failure each step can meet; the pieces that stand alone are modules of their own
(policy, jobs, relay, egress, retention, executor).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path

from federation.common.codehash import code_hash
from federation.common.files import atomic_write_json, read_json
from federation.common.settings import EgressRules, Policy
from federation.common.statuses import JobStatus
from federation.owner import dependencies, jobs
from federation.owner.policy import Decision, Verdict, decide
from federation.owner.relay import Relay

log = logging.getLogger(__name__)

PICK_UP = 60.0  # s for the executor to start a job before it counts as not there
STOP_WAIT = 20.0  # s for the executor to end a job once asked
SWEEP_EVERY = 10.0  # s between two moves of ended jobs' files out of the synced tree


class NotApproved(RuntimeError):
    pass


class JobFailed(RuntimeError):
    """The job cannot run as submitted; the message is the reason its submitter sees."""


def last_error(stderr_log: Path) -> str:
    """The line of a job's stderr that says what went wrong (a traceback ends with it)."""
    lines = [line.strip() for line in stderr_log.read_text(errors="replace").splitlines() if line.strip()]
    reason = lines[-1] if lines else "no output on stderr"
    return f"{reason[:300]} (log on the owner: {stderr_log})"


def read_only_copy(source: Path, dest: Path) -> None:
    """Copy a tree the job may read but not change (it runs as another uid)."""
    shutil.copytree(source, dest)
    for root, dirs, files in os.walk(dest, topdown=False):
        for name in files:
            os.chmod(os.path.join(root, name), 0o444)
        os.chmod(root, 0o555)


def app_name_of(code_dir: Path) -> str:
    import tomllib

    try:
        with open(code_dir / "pyproject.toml", "rb") as f:
            return tomllib.load(f)["tool"]["syft_flwr"]["app_name"]
    except (OSError, KeyError, ValueError) as e:
        raise JobFailed(f"the job's code is not a bootstrapped syft_flwr app (pyproject.toml: {e})") from None


class Runner:
    def __init__(self, rds, sync, policy: Policy, state_dir: Path, job_timeout: float,
                 jobs_dir: Path = Path("/jobs"), egress: EgressRules = EgressRules(), relay=Relay,
                 strict_dependencies: bool = False, retention=None):
        self.rds = rds  # the owner's admin RDS session
        self.sync = sync  # federation.common.syftbox.SyncClient
        self.policy = policy
        self.records = jobs.Records(state_dir)
        self.logs_dir = self.records.root
        self.state_dir = state_dir
        self.job_timeout = job_timeout
        self.executor_jobs = jobs_dir  # shared with the executor, and nothing else
        self.egress = egress
        self.relay = relay  # carries the job's Flower traffic (tests: one without any)
        self.strict_dependencies = strict_dependencies
        self.retention = retention  # federation.owner.retention.Retention, or None: files stay
        self.swept = 0.0

    def heartbeat(self) -> None:
        """The executor stops a job when this goes stale: nobody would carry its replies."""
        beat = self.executor_jobs / "heartbeat"
        try:
            beat.touch()
        except OSError as e:
            log.debug("no heartbeat: %s", e)

    def serve_forever(self, poll: float = 1.0) -> None:
        self.close_interrupted()
        p = self.policy
        log.info("runner: %s approval%s", p.mode, "" if p.mode == "manual" else
                 f" for {', '.join(p.allowlist)}" + (f", {len(p.pinned_hashes)} pinned code hash(es)"
                                                      if p.pinned_hashes else "") + f"; others {p.otherwise}")
        while True:
            self.sync.check_alive()
            self.heartbeat()
            self.serve_once()
            self.sweep()
            time.sleep(poll)

    def sweep(self) -> None:
        """Ended jobs' files out of the synced tree, every SWEEP_EVERY s (between jobs: the
        runner runs one job at a time, so none is running now)."""
        if self.retention is None or time.monotonic() - self.swept < SWEEP_EVERY:
            return
        self.swept = time.monotonic()
        try:
            self.retention.sweep()
        except Exception as e:  # a file in use, a full disk: the next sweep tries again
            log.error("moving ended jobs' files out of the synced tree failed: %s: %s", type(e).__name__, e)

    def serve_once(self) -> None:
        try:
            listed = self.rds.job.get_all()
        except Exception as e:  # the owner keeps serving; the next poll lists them again
            log.error("could not list the jobs: %s: %s", type(e).__name__, str(e).splitlines()[0])
            return
        for job in listed:
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
        # ... and its folder on the jobs volume must not start (or go on) in the executor
        for left in (p for p in self.executor_jobs.glob("*") if p.is_dir() and self.executor_jobs.is_dir()):
            (left / "stop").touch()
            self.keep_and_clear(left, self.logs_dir / left.name)

    def review(self, job) -> None:
        """Decide once per job; a job left pending waits for a person."""
        if "decision" in self.records.read(job):
            return
        code = jobs.code_dir(self.rds, job)
        digest = code_hash(code)
        known = {d.name for d in self.rds.dataset.get_all()}
        needs = dependencies.check_code(code)
        if job.dataset_name not in known:  # no policy can make this job runnable here
            decision = Decision(Verdict.REJECT, f"no dataset named {job.dataset_name!r} on this datasite "
                                                f"(it has: {', '.join(sorted(known)) or 'none'})")
        else:
            decision = decide(self.policy, job.created_by, digest)
        # What the owner has installed is its submitter's business only once the policy said yes
        # (a person deciding sees it in `datasite jobs`): others learn nothing of it.
        if decision.approve and (needs.missing or needs.invalid):  # it would fail at its first import
            decision = Decision(Verdict.REJECT, needs.note)
        elif decision.approve and needs.differ and self.strict_dependencies:
            decision = Decision(Verdict.REJECT, f"{needs.note} (this owner runs only the declared versions: "
                                                "STRICT_DEPENDENCIES)")
        elif needs.note and decision.verdict is not Verdict.REJECT:
            decision = Decision(decision.verdict, f"{decision.reason}; {needs.note}")
        self.records.update(job, "code_hash", digest)
        self.records.update(job, "dependencies", needs.to_json())
        jobs.record_decision(self.rds, self.records, job, decision.verdict, decision.reason, by="policy")
        how = {Verdict.APPROVE: "approved", Verdict.REJECT: "rejected", Verdict.HOLD: "left pending"}
        (log.info if decision.approve else log.warning)(
            "job %s from %s %s: %s", job.uid.hex[:8], job.created_by, how[decision.verdict], decision.reason)

    def run(self, job) -> None:
        job = self.rds.job.get(uid=job.uid)  # the stored status, not a cached one
        if jobs.status(job) is not JobStatus.APPROVED:
            raise NotApproved(f"job {job.uid.hex} has status {job.status.value}; only approved jobs run")
        user_code = self.rds.user_code.get(uid=job.user_code_id)
        code = Path(user_code.local_dir)
        if not (code / user_code.entrypoint).is_file():
            raise JobFailed(f"the job has no {user_code.entrypoint} (its entrypoint) in its code")
        app_name = app_name_of(code)
        data_dir = Path(self.rds.dataset.get(name=job.dataset_name).get_private_path())
        logs = self.logs_dir / job.uid.hex
        logs.mkdir(parents=True, exist_ok=True)
        job_dir = self.prepare(job.uid.hex, code, data_dir)
        self.sync.wait_for_public_key(job.created_by, timeout=60)

        self.record_status(job.get_update_for_in_progress(), job)
        log.info("job %s running confined on private data (executor: %s)", job.uid.hex[:8], job_dir)
        started = time.time()
        status_file = job_dir / "run" / "status.json"

        def ended() -> str | None:
            status = read_json(status_file) or {}
            if status.get("state") != "done":
                return None
            return status.get("reason") or f"exit code {status.get('code')}"

        relay = self.relay(app_name, job_dir, job.uid.hex, self.egress, self.state_dir, ended,
                           round_timeout=self.job_timeout)
        thread = threading.Thread(target=relay.serve, name=f"relay-{job.uid.hex[:8]}", daemon=True)
        thread.start()
        atomic_write_json(job_dir / "spec.json", {"job": job.uid.hex, "timeout": self.job_timeout})
        try:
            try:
                status = self.supervise(job_dir, relay, started)
            finally:
                relay.stop()
                thread.join(timeout=10)
                self.keep_logs(job_dir, logs)
            self.finish(job, status, relay, logs, started)
        finally:
            # after the status is stored: a job's outputs may be large (up to JOB_DISK_MB),
            # and the DS should not wait for the owner's copy of them
            self.keep_and_clear(job_dir, logs)

    def finish(self, job, status: dict, relay: Relay, logs: Path, started: float) -> None:
        """Store how the job ended, and what it sent, on the job and in the owner's records."""
        code_ = status.get("code")
        if relay.refused:
            code_, error = 1, f"reply refused: {relay.refused}"
        elif code_ == 0 and status.get("reason") is None:
            error = None
        else:
            reason = status.get("reason") or f"exit code {code_}: {last_error(logs / 'stderr.log')}"
            code_, error = (code_ if code_ not in (0, None) else 1), reason
        differ = self.records.read(job).get("dependencies", {}).get("differ")
        if error is not None and differ and not relay.refused and status.get("reason") is None:
            # the job's own code failed: perhaps for those versions
            error = f"{error} (it ran with other versions than declared: {'; '.join(differ)})"
        update = job.get_update_for_return_code(return_code=code_, error_message=error)
        notes = []
        if error is None and relay.suppressed:
            notes.append(f"{relay.suppressed} small count(s) sent as 0 (counts below k={self.egress.small_count_k}, "
                         "the owner's small-count rule)")
        if error is None and differ:
            notes.append(f"ran with other versions than declared: {'; '.join(differ)}")
        note = "; ".join(notes) or None
        if note:
            update.error_message = job.error_message = note
        self.record_status(update, job)
        self.records.update(job, "run", {"return_code": code_, "error": error,
                                         "seconds": round(time.time() - started, 1)})
        self.records.update(job, "egress", {"replies": relay.replies, "suppressed": relay.suppressed,
                                            "refused": relay.refused})
        (log.info if code_ == 0 else log.error)(
            "job %s finished: %s", job.uid.hex[:8], "ok" + (f" ({note})" if note else "") if code_ == 0 else error)

    def prepare(self, uid: str, code: Path, data_dir: Path) -> Path:
        """The job's folder on the jobs volume: code and data it can only read, the folders it
        may write, the inbox only this runner writes."""
        job_dir = self.executor_jobs / uid
        if job_dir.exists():
            shutil.rmtree(job_dir, ignore_errors=True)
        job_dir.mkdir(parents=True)
        read_only_copy(code, job_dir / "code")
        read_only_copy(data_dir, job_dir / "data")
        (job_dir / "inbox").mkdir()
        for name in ("outbox", "output", "work", "run"):
            (job_dir / name).mkdir()
            os.chmod(job_dir / name, 0o777)  # the executor's uid writes here
        return job_dir

    def keep_logs(self, job_dir: Path, logs: Path) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        for name in ("stdout.log", "stderr.log"):
            log_file = job_dir / "run" / name
            if log_file.is_file() and not log_file.is_symlink():  # a link would point into this container
                shutil.copyfile(log_file, logs / name)

    def keep_and_clear(self, job_dir: Path, logs: Path) -> None:
        """The job's logs and outputs go to the owner's state; its folder leaves the jobs volume,
        so the next job (perhaps another DS's) finds nothing of it there."""
        self.keep_logs(job_dir, logs)
        if (job_dir / "output").is_dir() and not (job_dir / "output").is_symlink():
            shutil.rmtree(logs / "output", ignore_errors=True)
            shutil.copytree(job_dir / "output", logs / "output", symlinks=True)
        for name in ("code", "data"):
            for root, dirs, _files in os.walk(job_dir / name):
                os.chmod(root, 0o755)
        shutil.rmtree(job_dir, ignore_errors=True)

    def supervise(self, job_dir: Path, relay: Relay, started: float) -> dict:
        """Until the job has ended: the executor's final status."""
        status_file = job_dir / "run" / "status.json"
        asked_stop = None
        while True:
            self.heartbeat()
            status = read_json(status_file) or {}
            if status.get("state") == "done":
                return status
            now = time.time()
            if not status and now - started > PICK_UP:
                (job_dir / "stop").touch()
                return {"code": None, "reason": f"the executor did not start the job within {PICK_UP:g} s "
                                                "(is this owner's executor container running?)"}
            if asked_stop is None and (relay.stopping or now - started > self.job_timeout + 30):
                (job_dir / "stop").touch()  # the DS's stop signal, a refused reply, or out of time
                asked_stop = now
            if asked_stop is not None and now - asked_stop > STOP_WAIT:
                return {"code": None, "reason": "the executor did not end the job when asked"}
            time.sleep(0.2)

    def record_status(self, update, job, attempts: int = 3) -> None:
        """Store a job's status (in progress, finished or failed), and check it is stored: an update through the owner's own
        RDS server was seen lost once in a while (its RPC file races like any other), which left
        the job `job_in_progress` for good and the DS waiting."""
        wanted = dict(update)  # (a JobUpdate, or a test's dict)
        for attempt in range(1, attempts + 1):
            try:
                self.rds.job.update_job_status(update, job)
                stored = self.rds.job.get(uid=job.uid)
            except Exception as e:  # a lost request is answered by no one: its wait times out (RPC_EXPIRY)
                if attempt == attempts:
                    raise
                log.warning("job %s: storing its status failed (attempt %d: %s: %s)", job.uid.hex[:8], attempt,
                            type(e).__name__, e)
                continue
            if stored.status == wanted["status"] and stored.error_message == wanted.get("error_message"):
                return
            log.warning("job %s: its status did not take (attempt %d): storing it again", job.uid.hex[:8], attempt)
            time.sleep(attempt)

    def _fail(self, job, error: str) -> None:
        self.records.update(job, "run", {"return_code": None, "error": error})
        try:
            self.record_status(job.get_update_for_return_code(return_code=1, error_message=error), job)
        except Exception as e:
            log.error("job %s: could not record the failure: %s", job.uid.hex[:8], e)
