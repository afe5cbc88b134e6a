"""federation.owner.executor: a job's limits and ends (the container's own limits are Docker's,
checked by the integration tests)."""

from __future__ import annotations

import os
import sys
import textwrap
import threading
import time
from pathlib import Path

from federation.owner import executor


def job_folder(tmp_path: Path, main: str) -> Path:
    jobs = tmp_path / "jobs"
    job = jobs / "job1"
    for name in ("code", "data", "inbox", "outbox", "output", "work", "run"):
        (job / name).mkdir(parents=True)
    (job / "code" / "main.py").write_text(textwrap.dedent(main))
    (jobs / "heartbeat").touch()
    return job


def run(job: Path, timeout: float = 10, disk_mb: float = 64, file_mb: float = 16) -> dict:
    return executor.run_job(job, {"timeout": timeout}, disk_mb, file_mb,
                            command=lambda job_dir: [sys.executable, "main.py"])


def test_a_job_that_ends_by_itself(tmp_path):
    job = job_folder(tmp_path, "import os; open(os.environ['OUTPUT_DIR'] + '/x', 'w').write('ok'); print('hi')")
    status = run(job)
    assert status["state"] == "done" and status["code"] == 0 and status["reason"] is None
    assert (job / "output" / "x").read_text() == "ok" and "hi" in (job / "run" / "stdout.log").read_text()
    assert executor.read_json(job / "run" / "status.json") == status


def test_the_environment_holds_nothing_of_the_owner(tmp_path, monkeypatch):
    monkeypatch.setenv("SYFTBOX_CLIENT_CONFIG_PATH", "/home/syft/federation/config.json")
    monkeypatch.setenv("SYFTBOX_ACCESS_TOKEN", "secret")
    job = job_folder(tmp_path, "import os, json; open(os.environ['OUTPUT_DIR'] + '/env', 'w').write(json.dumps(dict(os.environ)))")
    run(job)
    env = executor.read_json(job / "output" / "env")
    assert not {k for k in env if k.startswith("SYFTBOX")}
    assert env["DATA_DIR"] == str(job / "data") and env["HOME"] == str(job / "work")


def test_out_of_time_is_stopped_with_the_reason(tmp_path):
    job = job_folder(tmp_path, "import time; time.sleep(30)")
    t0 = time.monotonic()
    status = run(job, timeout=0.5)
    assert time.monotonic() - t0 < 5
    assert "limit of 0.5 s (JOB_TIMEOUT)" in status["reason"]


def test_writing_past_the_disk_limit_is_stopped(tmp_path):
    job = job_folder(tmp_path, """
        import os, time
        for i in range(100):
            with open(os.environ["OUTPUT_DIR"] + f"/f{i}", "wb") as f:
                f.write(b"x" * 2**20)
            time.sleep(0.02)
        """)
    status = run(job, disk_mb=5, file_mb=4)
    assert "over the owner's limit of 5 MiB (JOB_DISK_MB)" in status["reason"], status


def test_one_file_past_the_file_limit_is_stopped_by_the_kernel(tmp_path):
    job = job_folder(tmp_path, "import os\nopen(os.environ['OUTPUT_DIR'] + '/big', 'wb').write(b'x' * 3 * 2**20)")
    status = run(job, disk_mb=64, file_mb=1)
    assert status["code"] != 0
    assert (job / "output" / "big").stat().st_size <= 2**20
    assert "over the owner's limit of 1 MiB per file (JOB_FILE_MB)" in status["reason"]


def test_a_stop_file_ends_the_job(tmp_path):
    job = job_folder(tmp_path, "import time; time.sleep(30)")
    threading.Timer(0.5, (job / "stop").touch).start()
    t0 = time.monotonic()
    run(job)
    assert time.monotonic() - t0 < 10


def test_without_the_owners_heartbeat_the_job_is_stopped(tmp_path, monkeypatch):
    monkeypatch.setattr(executor, "HEARTBEAT_STALE", 0.5)
    job = job_folder(tmp_path, "import time; time.sleep(30)")
    status = run(job)
    assert "runner went away" in status["reason"]


def test_only_jobs_not_started_are_pending(tmp_path):
    job = job_folder(tmp_path, "pass")
    assert executor.pending(job.parent) == []
    (job / "spec.json").write_text("{}")
    assert executor.pending(job.parent) == [job]
    run(job)
    assert executor.pending(job.parent) == []


# ---------------------------------------------------------------- the harness started ahead

# Takes its job as the real warm harness does (harness.take_job), then runs the job's main.py.
WARM_SCRIPT = ("import sys\nfrom federation.owner.harness import take_job\nline = sys.stdin.readline()\n"
               "if line.strip():\n    take_job(line)\n    exec(open('main.py').read())\n")


def warm_command() -> list[str]:
    return [sys.executable, "-P", "-c", WARM_SCRIPT]


SEEN = """\
import json, os, sys
seen = {"env": dict(os.environ), "cwd": os.getcwd(), "path0": sys.path[0], "pid": os.getpid()}
open(os.environ["OUTPUT_DIR"] + "/seen", "w").write(json.dumps(seen))
print("to stdout"); print("to stderr", file=sys.stderr)
"""


def test_a_job_handed_to_a_harness_started_ahead_sees_what_a_fresh_start_would(tmp_path):
    fresh_job = job_folder(tmp_path / "fresh", SEEN)
    run(fresh_job)
    job = job_folder(tmp_path / "warm", SEEN)
    warm = executor.WarmHarness(16, warm_command)
    status = executor.run_job(job, {"timeout": 10}, 64, 16, command=lambda job_dir: ["false"], warm=warm)
    assert status["code"] == 0 and status["reason"] is None, status
    fresh, seen = (executor.read_json(j / "output" / "seen") for j in (fresh_job, job))
    assert seen["pid"] == warm.proc.pid  # the process started ahead ran it
    assert seen["env"] == {k: v.replace(str(fresh_job), str(job)) for k, v in fresh["env"].items()}
    assert seen["cwd"] == str(job / "code") and seen["path0"] == str(job / "code")
    assert "to stdout" in (job / "run" / "stdout.log").read_text()
    assert "to stderr" in (job / "run" / "stderr.log").read_text()


def test_a_harness_started_ahead_keeps_the_jobs_limits(tmp_path):
    job = job_folder(tmp_path, "open('big', 'wb').write(b'x' * (3 * 2**20))")
    status = executor.run_job(job, {"timeout": 10}, 64, 1, warm=executor.WarmHarness(1, warm_command))
    assert status["code"] != 0 and "per file" in status["reason"], status


def test_a_harness_that_died_before_its_job_is_replaced_by_a_fresh_start(tmp_path):
    job = job_folder(tmp_path, "import os; open(os.environ['OUTPUT_DIR'] + '/x', 'w').write('ok')")
    warm = executor.WarmHarness(16, lambda: [sys.executable, "-c", "raise SystemExit(3)"])
    warm.proc.wait(timeout=10)
    status = executor.run_job(job, {"timeout": 10}, 64, 16, command=lambda job_dir: [sys.executable, "main.py"],
                              warm=warm)
    assert status["code"] == 0 and (job / "output" / "x").read_text() == "ok", status


def test_each_job_gets_its_own_harness_started_ahead_and_none_is_left_behind(tmp_path):
    jobs = tmp_path / "jobs"
    first = job_folder(tmp_path, SEEN)
    (first / "spec.json").write_text('{"timeout": 10}')
    on = threading.Event()
    on.set()
    serving = threading.Thread(target=executor.serve, args=(jobs, 64, 16),
                               kwargs={"running": on.is_set, "warm_command": warm_command}, daemon=True)
    serving.start()
    second = jobs / "job2"
    deadline = time.monotonic() + 30
    while (executor.read_json(first / "run" / "status.json") or {}).get("state") != "done":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for name in ("code", "data", "inbox", "outbox", "output", "work", "run"):
        (second / name).mkdir(parents=True)
    (second / "code" / "main.py").write_text(SEEN)
    (second / "spec.json").write_text('{"timeout": 10}')
    while (executor.read_json(second / "run" / "status.json") or {}).get("state") != "done":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    on.clear()
    serving.join(timeout=10)
    assert not serving.is_alive()
    pids = [executor.read_json(j / "output" / "seen")["pid"] for j in (first, second)]
    assert pids[0] != pids[1]
    # the one started ahead for a third job was stopped with the loop
    left = [int(e) for e in os.listdir("/proc") if e.isdigit() and WARM_SCRIPT[:40] in _cmdline(int(e))]
    assert left == []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_the_real_harness_started_ahead_ends_quietly_without_a_job():
    import subprocess

    proc = subprocess.run(executor.warm_harness_command(), input=b"", capture_output=True, timeout=120, cwd="/")
    assert proc.returncode == 0, proc.stderr[-2000:]
