"""federation.owner.executor: a job's limits and ends (the container's own limits are Docker's,
checked by the integration tests)."""

from __future__ import annotations

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
