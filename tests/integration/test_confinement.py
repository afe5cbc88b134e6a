"""Approved code that tries to get out: each attempt contained, every reply on the owner's record.

Each job here is the DS's bundled app with a few lines added, submitted through the real flow
and approved by the owners' default policy. The attempts target only the stack's own
containers, by service name.
"""

from __future__ import annotations

import json
import textwrap
import time

from tests.conftest import REPO_ROOT
from tests.integration.helpers import (DATASITES, PROJECT, compose, datasite, ds_finish, ds_run_record, ds_start,
                                       ds_stop, exec_in, grep_rows, jobs_table, private_lines, result_line,
                                       start_owner, stop_owner, wait_for_job, wait_healthy)

OWNER = DATASITES[0]
TWO = ",".join(DATASITES[:2])

ESCAPES = '''
# ---- added by the test: everything a job might try to get the private rows out
import json as _json, os as _os, pathlib as _pl, socket as _socket
_report = {}
def _try(name, fn):
    try:
        fn()
        _report[name] = "SUCCEEDED"
    except Exception as e:  # the attempt failed inside the job
        _report[name] = f"{type(e).__name__}: {e}"
def _found(paths):
    found = [str(p) for p in paths if _pl.Path(p).exists()]
    if not found:
        raise FileNotFoundError("none of them exists here")
    return found
_home = "/home/syft/federation"
_try("connect to the sync server", lambda: _socket.create_connection(("syftbox", 5001), timeout=3).close())
_try("connect to the DS's results page", lambda: _socket.create_connection(("ds", 8080), timeout=3).close())
_try("connect to another owner", lambda: _socket.create_connection(("do2", 7938), timeout=3).close())
_try("write a private row into the owner's public folder",
     lambda: open(f"{_home}/SyftBox/datasites/''' + OWNER + '''/public/leak.csv", "w").write("6,148,72\\n"))
_try("write anywhere in the synced tree", lambda: open(f"{_home}/SyftBox/datasites/leak.csv", "w").write("x"))
_try("read the owner's kit", lambda: open("/run/federation/kit/kit.json").read())
_try("read the owner's SyftBox config", lambda: open(f"{_home}/config.json").read())
_try("read the owner's keys", lambda: _found([f"{_home}/.syftkeys", "/home/syft/.syftbox", f"{_home}/SyftBox/.syft"]))
_try("change its own code", lambda: open(_os.path.join(_os.environ["CODE_DIR"], "x.py"), "w").write("x"))
_try("change the private data", lambda: open(_os.path.join(_os.environ["DATA_DIR"], "extra.csv"), "w").write("x"))
_try("write outside its folders", lambda: open("/home/syft/leak.txt", "w").write("x"))
def _owner_settings():
    if not [k for k in _os.environ if k.startswith(("SYFTBOX", "KIT"))]:
        raise KeyError("no SYFTBOX_* or KIT_* variable here")
_try("see the owner's SyftBox settings in its environment", _owner_settings)
_pl.Path(_os.environ["OUTPUT_DIR"], "escape.json").write_text(_json.dumps(_report))

# ...and then reply with every private row.
from flwr.common import ConfigRecord as _ConfigRecord
app = ClientApp()

@app.query()
def query(msg, context):
    texts = [p.read_text() for p in sorted(_pl.Path(_os.environ["DATA_DIR"]).glob("*.csv"))]
    values = [float(v) for t in texts for line in t.splitlines()[1:] for v in line.split(",")]
    content = RecordDict({"rows": MetricRecord({"values": values}), "csv": _ConfigRecord({"text": "".join(texts)})})
    return Message(content=content, reply_to=msg)
'''

FORK_BOMB = '''
import os as _os, pathlib as _pl, time as _time
_children = 0
try:
    while True:
        if _os.fork() == 0:
            _time.sleep(120)
            _os._exit(0)
        _children += 1
finally:
    _pl.Path(_os.environ["OUTPUT_DIR"], "forks.txt").write_text(str(_children))
'''

MEMORY_BOMB = '''
import os as _os, pathlib as _pl
_held = []
for _ in range(60):  # at most 6 GB: past the executor's limit, never the machine's
    _held.append(bytearray(100 * 2**20))
    _pl.Path(_os.environ["OUTPUT_DIR"], "held.txt").write_text(str(len(_held) * 100))
raise SystemExit("the memory limit did not stop me")
'''

DISK_FILL = '''
import os as _os
with open(_os.path.join(_os.environ["OUTPUT_DIR"], "fill.bin"), "wb") as _f:
    for _ in range(400):  # at most 400 MiB
        _f.write(b"x" * 2**20)
        _f.flush()
raise SystemExit("the disk limit did not stop me")
'''


def app_with(name: str, code: str) -> str:
    """The bundled app with `code` appended to its ClientApp module, in the ds container."""
    path = f"/tmp/{name}"
    exec_in("ds", "sh", "-c", f"rm -rf {path} && cp -r /app/fed_app {path}")
    exec_in("ds", "sh", "-c", f"cat >> {path}/fed_app/client_app.py", input=textwrap.dedent(code))
    return path


def job_dir_of(container: str, job_prefix: str) -> str:
    """Where the owner keeps a finished job's logs and outputs (its folder left the jobs volume)."""
    out = exec_in(container, "sh", "-c", f"ls -d /home/syft/federation/state/jobs/{job_prefix}*").stdout.split()
    assert len(out) == 1, out
    return out[0]


def test_a_normal_runs_replies_are_on_the_record_with_small_counts_sent_as_zero(stack):
    """The session's own run (before any other job here): every owner's reply passed the default
    rules and is in its audit; the Pima shares have histogram cells below k, which left as 0,
    and the DS sees how many in the job's status."""
    for service, email in zip(("do1", "do2"), DATASITES[:2]):
        audit = datasite(stack_container(service), "audit")
        sent = [line for line in audit.stdout.splitlines() if " sent" in line]
        assert sent, audit.stdout
        shown = datasite(stack_container(service), "audit", "--show")
        assert '"query_results"' in shown.stdout and "/hist" in shown.stdout
    deadline = time.monotonic() + 60  # the jobs close a moment after the round
    while (status := exec_in("ds", "datasite", "status").stdout).count("job_run_finished") < len(DATASITES):
        assert time.monotonic() < deadline, status
        time.sleep(1)
    for email in DATASITES:
        line = next(x for x in status.splitlines() if x.startswith(email))
        assert "small count(s) sent as 0 (counts below k=5" in line, line


def test_escape_attempts_fail_inside_the_job_and_the_raw_reply_is_refused(stack, private_csvs):
    failed_before = {s: {r["ID"] for r in jobs_table(stack_container(s)) if r["STATUS"] == "job_run_failed"}
                     for s in ("do1", "do2")}
    app = app_with("leaky-app", ESCAPES)
    code, output = ds_finish(ds_start("ds", env={"FED_APP_DIR": app, "DATASITES": TWO, "MIN_REPLIES": "1",
                                                 "RESULTS_DIR": "/tmp/results-leaky", "ROUND_TIMEOUT": "60"}),
                             timeout=400)
    assert code == 1, output[-3000:]  # no owner's reply passed: the run fails, saying why
    assert "no usable replies" in output, output[-3000:]
    tried = refused = 0
    for service in ("do1", "do2"):
        # the owner ends the job once the DS's server has its (error) reply: wait for that
        job = wait_for_job(stack_container(service), "job_run_failed", failed_before[service], timeout=120)
        assert job["WHY"].startswith("reply refused: the reply is"), job
        assert "REPLY_MAX_BYTES" in job["WHY"], job
        audit = datasite(f"{stack_container(service)}", "audit")
        assert audit.returncode == 0, audit.stderr
        refused_rows = [line for line in audit.stdout.splitlines() if "refused: the reply is" in line]
        assert refused_rows, audit.stdout
        job_prefix = refused_rows[-1].split()[2]
        report = json.loads(exec_in(service, "cat", f"{job_dir_of(service, job_prefix)}/output/escape.json").stdout)
        for what, result in report.items():
            tried += 1
            refused += result != "SUCCEEDED"
            print(f"  {service}: {what}: {result}")
        assert all(result != "SUCCEEDED" for result in report.values()), report
    print(f"\nconfinement: {refused} of {tried} escape attempts failed inside the job; "
          "2 of 2 raw-row replies refused by the size cap")
    patterns = private_lines(private_csvs)
    assert grep_rows("syftbox", "/home/syft/server", patterns) == []
    assert grep_rows("ds", "/", patterns) == []
    # the runner serves the next job: a normal run still works
    code, output = ds_finish(ds_start("ds", env={"RESULTS_DIR": "/tmp/results-after-leaky"}), timeout=400)
    assert code == 0, output[-3000:]


def stack_container(service: str) -> str:
    return compose("ps", "-q", service).stdout.strip()


def submit_and_wait(app: str) -> dict:
    code, output = ds_finish(ds_start("submit", "240", env={"FED_APP_DIR": app, "DATASITES": TWO}), timeout=420)
    assert code == 0, output[-3000:]
    return result_line(output)


def test_a_fork_bomb_is_contained(stack):
    jobs = submit_and_wait(app_with("fork-bomb", FORK_BOMB))
    for email, job in jobs.items():
        assert job["status"] == "job_run_failed", (email, job)
        assert "BlockingIOError" in job["reason"] or "Resource temporarily unavailable" in job["reason"], job
    forks = int(exec_in("do1", "sh", "-c", f"cat {job_dir_of('do1', jobs[OWNER]['job'][:12])}/output/forks.txt").stdout)
    assert 0 < forks < 256  # the executor's pids_limit
    # nothing of it is left running in the executor
    left = exec_in("do1-executor", "sh", "-c", "ls /proc | grep -c '^[0-9]'", check=False).stdout.strip()
    assert int(left or 0) < 10, left


def test_a_memory_bomb_is_contained(stack):
    jobs = submit_and_wait(app_with("memory-bomb", MEMORY_BOMB))
    for email, job in jobs.items():
        assert job["status"] == "job_run_failed", (email, job)
        assert "memory" in job["reason"].lower(), job
        assert "did not stop me" not in job["reason"], job


def test_filling_the_disk_is_contained(stack):
    jobs = submit_and_wait(app_with("disk-fill", DISK_FILL))
    for email, job in jobs.items():
        assert job["status"] == "job_run_failed", (email, job)
        assert "JOB_DISK_MB" in job["reason"] or "JOB_FILE_MB" in job["reason"], job


def test_a_person_withholds_a_reply_and_the_ds_learns_why(stack, tmp_path, private_csvs):
    """REPLY_APPROVAL=manual: the reply waits in `datasite replies` until a person decides; withheld,
    that owner's job fails with the person's reason and the others' replies still count."""
    email = "careful@hospital.org"
    private = tmp_path / "private"
    private.mkdir()
    rows = (REPO_ROOT.parent / "shared" / "data" / "pima-indians-diabetes.csv").read_text().splitlines()
    (private / "ward.csv").write_text("\n".join(rows[:101]) + "\n")
    name = start_owner(f"{PROJECT}-careful", email, private, APPROVE_JOBS_FROM="ds@openmined.org",
                       REPLY_APPROVAL="manual")
    run = None
    try:
        wait_healthy(name, timeout=180)
        run = ds_start("ds", env={"DATASITES": ",".join([*DATASITES, email]), "MIN_REPLIES": str(len(DATASITES)),
                                  "RESULTS_DIR": "/tmp/results-careful", "ROUND_TIMEOUT": "60"})
        deadline = time.monotonic() + 180
        while "no reply waits" in (waiting := datasite(name, "replies").stdout) or not waiting.strip():
            assert time.monotonic() < deadline and run.poll() is None, waiting
            time.sleep(1)
        reply = waiting.splitlines()[1].split()[0]
        assert datasite(name, "withhold", reply, "--reason", "too detailed for us").returncode == 0
        assert datasite(name, "withhold", reply, "--reason", "again").returncode == 2  # decided already
        code, output = ds_finish(run, timeout=300)
        assert code == 0, output[-3000:]
        record = ds_run_record("/tmp/results-careful/run.json")
        assert record.missing_datasites == [email] or email not in record.datasites, record
        seen = wait_for_job(name, "job_run_failed", set(), timeout=60)
        assert "withheld by the data owner: too detailed for us" in seen["WHY"], seen
        audit = datasite(name, "audit").stdout
        assert "withheld by the data owner: too detailed for us" in audit
    finally:
        if run is not None:
            ds_stop(run)
        stop_owner(name)
