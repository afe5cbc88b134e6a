"""`federation executor`: where an owner's approved jobs run, confined by Docker and the kernel.

One executor container per owner (compose: `do1-executor`), started with no network at all
(`network_mode: none`), a read-only root file system, no capabilities, `no-new-privileges`, a
memory limit and a process limit, as uid 1001 (not the owner's 1000), sharing nothing with the
owner but the jobs volume. It holds none of the owner's credentials: no kit, no SyftBox config,
no keys, no synced tree. It runs one job at a time.

The owner's runner prepares a job folder on the jobs volume (`/jobs/<id>/`): `code/` and
`data/` read-only to uid 1001, `inbox/` the runner fills with the Flower messages it decrypted,
`outbox/`, `output/`, `work/` and `run/` the job may write. `spec.json` asks for the job to run;
a `stop` file asks it to end. Here the job (the harness, `federation.owner.harness`) gets:
- a file-size limit (RLIMIT_FSIZE, the kernel's) per file, and a total-disk watch on what it
  may write, stopped past `disk_mb`;
- the wall-time limit of its spec; and it is stopped when the owner's heartbeat stops (the
  owner died or restarted: nobody would carry its replies);
- the highest OOM score, so a memory bomb is what the kernel kills, not this supervisor.
When it ends, every other process in the container is killed (a job may leave its session).
`run/status.json` then says how it ended.

The next job's harness is started ahead (`WarmHarness`), once the last job's processes are gone:
it imports Flower, syft_flwr, numpy and pandas (about 2 s) and waits, knowing no job, until the
executor hands it one. It starts with the same limits as a job, in no job's folder and with no
writable folder on its import path (`python -P`, working folder `/`), so nothing a job left in
`/tmp` can reach the next job's imports; it then takes the job's environment, folder and logs
exactly as a fresh start would have them. One warm harness serves one job; a dead one is
replaced by a fresh start.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from federation.common import health, settings
from federation.common.files import atomic_write_json, read_json

log = logging.getLogger(__name__)

POLL = 0.2
HEARTBEAT_STALE = 20.0  # s without the owner's heartbeat: nobody carries the job's replies
WRITABLE = ("outbox", "output", "work", "run")


def folder_bytes(folders: list[Path]) -> int:
    total = 0
    for folder in folders:
        for root, _dirs, files in os.walk(folder):
            for name in files:
                try:
                    total += os.lstat(os.path.join(root, name)).st_size
                except OSError:
                    pass
    return total


def kill_everything_else(session: int) -> int:
    """SIGKILL what a job started, even outside its session: as the container's PID 1 (as in
    the executor's container) every other process of the container; anywhere else (a test)
    only the job's session. Returns how many."""
    if os.getpid() != 1:
        from federation.common.processes import session_processes, stop_session

        before = len(session_processes(session))
        stop_session(session, grace=0.5)
        return before
    me, killed = os.getpid(), 0
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in (me, 1):
            try:
                os.kill(int(entry), signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
    reap(wait=5.0)
    return killed


def reap(wait: float = 0.0) -> None:
    """Collect exited children (as PID 1 every orphan of the container is ours): a zombie still
    holds a slot of the container's process limit. With `wait`, until none is left or time is up."""
    deadline = time.monotonic() + wait
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # no child at all
        if pid == 0:  # children remain, none exited yet
            if time.monotonic() >= deadline:
                return
            time.sleep(0.02)


def _limit_child(file_bytes: int):
    def preexec():
        os.setsid()
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        try:
            Path("/proc/self/oom_score_adj").write_text("1000")
        except OSError:
            pass
    return preexec


def heartbeat_age(jobs: Path) -> float:
    try:
        return time.time() - (jobs / "heartbeat").stat().st_mtime
    except OSError:
        return float("inf")


def harness_command(job_dir: Path) -> list[str]:
    return [sys.executable, "-m", "federation.owner.harness", str(job_dir)]


def warm_harness_command() -> list[str]:
    return [sys.executable, "-P", "-m", "federation.owner.harness", "--warm"]


class WarmHarness:
    """A harness started before its job: it imports what ClientApps need, then reads its job
    (folder and environment, one JSON line) from its stdin (`federation.owner.harness --warm`)."""

    def __init__(self, file_mb: float, command=warm_harness_command):
        self.proc = subprocess.Popen(
            command(), cwd="/", env=settings.job_environment(Path("/nonexistent")) | {"HOME": "/nonexistent"},
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=_limit_child(int(file_mb * 2**20)))

    def hand(self, job_dir: Path, env: dict[str, str]) -> subprocess.Popen | None:
        """The process now running `job_dir`, or None when this one can no longer take it
        (it died): the job then starts fresh. A job folder it could not use raises, as a fresh
        start's would."""
        for name in ("code", "run"):
            if not (job_dir / name).is_dir():
                raise FileNotFoundError(f"no folder {job_dir / name}")
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"job_dir": str(job_dir), "env": env}).encode() + b"\n")
                self.proc.stdin.close()
                return self.proc
            except OSError:  # it died meanwhile
                pass
        self.discard()
        return None

    def discard(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def run_job(job_dir: Path, spec: dict, disk_mb: float, file_mb: float, command=harness_command,
            warm: WarmHarness | None = None) -> dict:
    """Run one job to its end; the status it ended with. `command(job_dir)`: what runs (the
    harness; tests run a plain script), unless `warm`, a harness started ahead, takes it."""
    run = job_dir / "run"
    started = time.time()
    env = settings.job_environment(job_dir)
    atomic_write_json(run / "status.json", {"state": "running", "started": started})
    proc = warm.hand(job_dir, env) if warm is not None else None
    if proc is None:
        with open(run / "stdout.log", "ab") as out, open(run / "stderr.log", "ab") as err:
            proc = subprocess.Popen(command(job_dir), cwd=job_dir / "code", env=env, stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL, preexec_fn=_limit_child(int(file_mb * 2**20)))
    timeout = float(spec.get("timeout", 600))
    writable = [job_dir / name for name in WRITABLE]
    try:
        reason = _watch(proc, job_dir, started, timeout, disk_mb, writable)
    finally:  # however the watch ends, nothing of the job outlives it into the next job's harness
        killed = kill_everything_else(proc.pid)
    code = proc.wait()
    if reason is None and code < 0:
        name = signal.Signals(-code).name
        reason = {"SIGKILL": "killed by the kernel (memory limit, JOB_MEMORY?)",
                  "SIGXFSZ": f"stopped: a file went over the owner's limit of {file_mb:g} MiB per file (JOB_FILE_MB)"
                  }.get(name, f"killed by {name}")
    if reason is None and code not in (0, None) and "File too large" in _tail(run / "stderr.log"):
        # Python ignores SIGXFSZ: the write failed with EFBIG, the job raised
        reason = f"stopped: a file went over the owner's limit of {file_mb:g} MiB per file (JOB_FILE_MB)"
    hand_back(writable)
    status = {"state": "done", "code": code, "reason": reason, "seconds": round(time.time() - started, 1),
              "processes_killed": killed}
    atomic_write_json(run / "status.json", status)
    log.info("job %s: %s", job_dir.name, reason or f"exit code {code}")
    return status


def _watch(proc: subprocess.Popen, job_dir: Path, started: float, timeout: float, disk_mb: float,
           writable: list[Path]) -> str | None:
    """Until the job ends, is asked to stop, or breaks a limit: why it was stopped, if it was."""
    reason = None
    checked = 0.0
    while proc.poll() is None:
        time.sleep(POLL)
        now = time.time()
        if (job_dir / "stop").exists():
            # the runner asks it to end (the DS sent its stop signal): the harness sees the
            # same file and exits by itself; give it a moment before the kill
            deadline = now + 5
            while proc.poll() is None and time.time() < deadline:
                time.sleep(POLL)
            break
        if now - started > timeout:
            reason = f"stopped after the owner's limit of {timeout:g} s (JOB_TIMEOUT)"
        elif heartbeat_age(job_dir.parent) > HEARTBEAT_STALE:
            reason = "stopped: the data owner's runner went away while the job ran"
        elif now - checked > 0.5:
            checked = now
            used = folder_bytes(writable)
            if used > disk_mb * 2**20:
                reason = f"stopped: it wrote {used / 2**20:.0f} MiB, over the owner's limit of {disk_mb:g} MiB (JOB_DISK_MB)"
        if reason:
            break
    return reason


def _tail(path: Path, size: int = 4096) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def hand_back(folders: list[Path]) -> None:
    """Let the owner's runner (another uid) keep and then remove what the job wrote."""
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            for name in dirs:
                _chmod(os.path.join(root, name), 0o777)
            for name in files:
                _chmod(os.path.join(root, name), 0o666)


def _chmod(path: str, mode: int) -> None:
    try:
        os.chmod(path, mode, follow_symlinks=False)
    except (OSError, NotImplementedError):
        pass  # not ours (or a symlink): the runner leaves it


def pending(jobs: Path) -> list[Path]:
    out = []
    for spec in sorted(jobs.glob("*/spec.json"), key=lambda p: p.stat().st_mtime):
        status = read_json(spec.parent / "run" / "status.json")
        if not status and not (spec.parent / "stop").exists():
            out.append(spec.parent)
    return out


def serve(jobs: Path, disk_mb: float, file_mb: float, command=harness_command,
          running=lambda: True, warm_command=None) -> None:
    """Run the jobs that arrive under `jobs`, one at a time, while `running()`. With
    `warm_command`, each job's harness is started ahead (`WarmHarness`) once the last job ended."""
    warm, start_ahead = None, warm_command is not None
    try:
        while running():
            if warm is None and start_ahead:
                try:
                    warm = WarmHarness(file_mb, warm_command)
                except OSError as e:  # (the process limit, memory): this job starts fresh
                    log.warning("could not start the next job's harness ahead: %s", e)
                    start_ahead = False
            if os.getpid() == 1:
                reap()  # a warm harness that died is reaped too: replaced at its job
            for job_dir in pending(jobs):
                _serve_one(job_dir, disk_mb, file_mb, command, warm)
                warm = None  # it ran this job (or died): a new one after this job's cleanup
                start_ahead = warm_command is not None
                break  # (re)start one before the next job
            time.sleep(POLL)
    finally:
        if warm is not None:
            warm.discard()


def _serve_one(job_dir: Path, disk_mb: float, file_mb: float, command, warm: WarmHarness | None) -> None:
    spec = read_json(job_dir / "spec.json") or {}
    try:
        run_job(job_dir, spec, disk_mb, file_mb, command, warm)
    except OSError as e:  # a job folder it cannot use: say so, serve the next
        log.error("job %s: %s", job_dir.name, e)
        if warm is not None:  # it may not have taken the job: never leave it waiting
            warm.discard()
        try:
            atomic_write_json(job_dir / "run" / "status.json", {"state": "done", "code": None,
                                                                "reason": f"the executor could not run it: {e}"})
        except OSError:
            pass


def main() -> int:
    config = settings.ExecutorSettings.from_env()
    logging.basicConfig(level=settings.log_level(), stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    health.report("ready", f"jobs from {config.jobs_dir}")
    log.info("executor: jobs from %s, %g MiB disk and %g MiB per file per job", config.jobs_dir,
             config.disk_mb, config.file_mb)
    serve(config.jobs_dir, config.disk_mb, config.file_mb, warm_command=warm_harness_command)
    return 0
