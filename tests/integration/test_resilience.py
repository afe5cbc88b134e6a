"""It keeps working: bad jobs, an owner killed mid-round, a sync server restart, a DS
restarted mid-run, and the whole stack taken down and up again (volumes kept)."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from federation.scientist.run_record import wait_for_run
from tests.integration.helpers import (DATASET, DATASITES, OWNERS, VITALS, assert_aggregate_matches, compose,
                                       docker_logs, ds_finish, ds_run_record, ds_start, ds_stop, exec_in, jobs_table,
                                       result_line, wait_healthy)

CONFIG = "/home/syft/federation/config.json"

SUBMIT_RAW = """
import json, pathlib, sys, syft_rds
host, dataset, files = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
code = pathlib.Path("/tmp/raw-jobs") / sys.argv[4]
code.mkdir(parents=True, exist_ok=True)
for name, text in files.items():
    (code / name).write_text(text)
s = syft_rds.init_session(host=host, syftbox_client_config_path=%r)
try:
    job = s.job.submit(name="raw-" + sys.argv[4], user_code_path=str(code), dataset_name=dataset, entrypoint="main.py")
except Exception as e:
    print("RESULT " + json.dumps({"error": f"{type(e).__name__}: {e}"}))
else:
    print("RESULT " + json.dumps({"job": job.uid.hex}))
""" % CONFIG

JOB_STATUS = """
import json, sys, uuid, syft_rds
s = syft_rds.init_session(host=sys.argv[1], syftbox_client_config_path=%r)
job = s.job.get(uid=uuid.UUID(sys.argv[2]))
print("RESULT " + json.dumps({"status": job.status.value, "reason": job.error_message}))
""" % CONFIG


def submit_raw(owner: str, case: str, files: dict[str, str], dataset: str = DATASET) -> dict:
    """A job submitted as the DS through syft-rds directly (no bootstrap, no checks of ours)."""
    return result_line(exec_in("ds", "python", "-c", SUBMIT_RAW, owner, dataset, json.dumps(files), case).stdout)


def job_status_seen_by_ds(owner: str, job: str, until: set[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        seen = result_line(exec_in("ds", "python", "-c", JOB_STATUS, owner, job).stdout)
        if seen["status"] in until or time.monotonic() > deadline:
            return seen
        time.sleep(1)


def container(service: str) -> str:
    cid = compose("ps", "-q", service).stdout.strip()
    assert cid, f"{service} is not running"
    return cid


ENDED = {"job_run_finished", "job_run_failed", "rejected"}


def test_bad_jobs_end_with_their_reason_and_the_owner_serves_the_next(stack, tmp_path):
    owner = DATASITES[0]
    syntax = submit_raw(owner, "syntax", {"main.py": "def broken(:\n    pass\n"})
    unknown = submit_raw(owner, "unknown-dataset", {"main.py": "print('hi')\n"}, dataset="cancer-registry")
    no_main = submit_raw(owner, "no-main", {"run.py": "print('hi')\n"})
    assert "Entrypoint main.py does not exist" in no_main["error"]  # refused before it leaves the DS

    seen = job_status_seen_by_ds(owner, syntax["job"], ENDED)
    assert seen["status"] == "job_run_failed"
    # not a Flower app at all: refused before it reaches the executor
    assert seen["reason"].startswith("the job's code is not a bootstrapped syft_flwr app"), seen
    seen = job_status_seen_by_ds(owner, unknown["job"], ENDED)
    assert seen == {"status": "rejected",
                    "reason": f"no dataset named 'cancer-registry' on this datasite (it has: {DATASET}, {VITALS})"}

    # A ClientApp that raises: the DS's own app, one line changed, through the real submit.
    exec_in("ds", "sh", "-c", "rm -rf /tmp/raising-app && cp -r /app/fed_app /tmp/raising-app && "
            "echo 'raise RuntimeError(\"ClientApp broken on purpose\")' >> /tmp/raising-app/fed_app/client_app.py")
    code, output = ds_finish(ds_start("submit", "30", env={"FED_APP_DIR": "/tmp/raising-app",
                                                          "DATASITES": ",".join(DATASITES[:2])}))
    assert code == 0, output[-3000:]
    for email, job in result_line(output).items():
        assert job["status"] == "job_run_failed", (email, job)
        assert "RuntimeError: ClientApp broken on purpose" in job["reason"], (email, job)
    # Its log stays on the owner.
    row = next(r for r in jobs_table(container("do1")) if result_line(output)[owner]["job"].startswith(r["ID"]))
    log_path = result_line(output)[owner]["reason"].split("log on the owner: ")[1].rstrip(")")
    assert "ClientApp broken on purpose" in exec_in("do1", "cat", log_path).stdout
    assert row["STATUS"] == "job_run_failed"

    # The runner went on: a good run over every owner still works.
    code, output = ds_finish(ds_start("ds", env={"RESULTS_DIR": "/tmp/results-after-bad-jobs"}))
    assert code == 0, output[-3000:]


def test_ds_naming_a_dataset_the_owners_do_not_have_fails_clearly(stack):
    t0 = time.monotonic()
    code, output = ds_finish(ds_start("ds", env={"DATASET_NAME": "cancer-registry",
                                                 "RESULTS_DIR": "/tmp/results-no-dataset"}))
    assert code == 1
    assert f"has no dataset 'cancer-registry'; it publishes: {DATASET}" in output
    assert time.monotonic() - t0 < 90  # the grace, not WAIT_TIMEOUT (300 s)


def read_until(proc: subprocess.Popen, text: str) -> str:
    """The output of a `ds_start` run up to the line holding `text` (or its end)."""
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if text in line:
            break
    return "".join(seen)


def wait_for_log(cid: str, text: str, since: float, timeout: float = 120) -> None:
    """Until the container logs `text` (logged after the Unix time `since`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in docker_logs(cid, "--since", f"{since:.3f}"):
            return
        time.sleep(0.2)
    raise AssertionError(f"{cid[:12]} never logged {text!r}")


def test_owner_killed_mid_round_is_listed_missing_and_joins_the_next_run(stack, private_csvs):
    victim_service, victim = "do3", OWNERS["do3"]
    victim_cid = container(victim_service)
    run = ds_start("ds", env={"ROUND_TIMEOUT": "20", "MIN_REPLIES": "2", "RESULTS_DIR": "/tmp/results-killed"})
    try:
        # Every owner approved and the Flower server is starting: its query is not out yet.
        before = read_until(run, "] server")
        subprocess.run(["docker", "kill", victim_cid], check=True, capture_output=True)
        code, output = ds_finish(run, timeout=240)
        output = before + output
    finally:
        ds_stop(run)
    assert code == 0, output[-3000:]
    assert f"no reply from {victim}" in output
    aggregate = json.loads(exec_in("ds", "cat", "/tmp/results-killed/aggregate.json").stdout)
    assert aggregate["missing_datasites"] == [victim]
    assert sorted(aggregate["datasites"]) == sorted(set(DATASITES) - {victim})
    assert_aggregate_matches(aggregate, private_csvs["do1"] + private_csvs["do2"])
    record = ds_run_record("/tmp/results-killed/run.json")
    assert record.status == "ok" and record.missing_datasites == [victim]
    # Its executor stopped the job once the owner's heartbeat went quiet: nobody carries its replies.
    deadline = time.monotonic() + 60
    while "runner went away" not in (ended := exec_in(f"{victim_service}-executor", "sh", "-c",
                                                       "cat /jobs/*/run/status.json", check=False).stdout):
        assert time.monotonic() < deadline, ended
        time.sleep(1)

    # Restarted, the owner closes the job it was killed in and takes part in the next run.
    subprocess.run(["docker", "start", victim_cid], check=True, capture_output=True)
    wait_healthy(victim_cid)
    interrupted = [r for r in jobs_table(victim_cid) if "restarted" in r["WHY"] or r["STATUS"] == "job_in_progress"]
    assert interrupted and all(r["STATUS"] == "job_run_failed" for r in interrupted), jobs_table(victim_cid)
    code, output = ds_finish(ds_start("ds", env={"RESULTS_DIR": "/tmp/results-rejoined"}))
    assert code == 0, output[-3000:]
    aggregate = json.loads(exec_in("ds", "cat", "/tmp/results-rejoined/aggregate.json").stdout)
    assert sorted(aggregate["datasites"]) == sorted(DATASITES) and aggregate["missing_datasites"] == []


def test_sync_server_restart_mid_run_the_run_still_completes(stack, private_csvs):
    run = ds_start("ds", env={"RESULTS_DIR": "/tmp/results-server-restart"})
    try:
        before = read_until(run, "] submitted")
        subprocess.run(["docker", "restart", "-t", "2", container("syftbox")], check=True, capture_output=True)
        code, output = ds_finish(run, timeout=300)
        output = before + output
    finally:
        ds_stop(run)
    assert "] submitted" in before, before[-3000:]
    assert code == 0, output[-3000:]
    aggregate = json.loads(exec_in("ds", "cat", "/tmp/results-server-restart/aggregate.json").stdout)
    assert sorted(aggregate["datasites"]) == sorted(DATASITES)
    assert_aggregate_matches(aggregate, [p for files in private_csvs.values() for p in files])


def ds_jobs_per_owner() -> dict[str, int]:
    return {service: sum(r["SUBMITTER"] == "ds@openmined.org" for r in jobs_table(container(service)))
            for service in OWNERS}


@pytest.mark.disruptive
def test_ds_restarted_mid_run_finds_its_submission_instead_of_submitting_again(stack, results_dir):
    ds_cid = container("ds")
    before = ds_jobs_per_owner()  # the DS's jobs each owner holds
    restarted = time.time()
    subprocess.run(["docker", "restart", "-t", "5", ds_cid], check=True, capture_output=True)
    wait_for_log(ds_cid, "] submitted", restarted)
    again = time.time()
    subprocess.run(["docker", "restart", "-t", "5", ds_cid], check=True, capture_output=True)
    run = wait_for_run(results_dir / "run.json", again, timeout=300)
    assert run.status == "ok", run
    assert run.resumed is True and "submit" not in run.steps
    assert "found this DS's earlier submission" in docker_logs(ds_cid, "--since", str(int(again)))
    assert ds_jobs_per_owner() == {service: n + 1 for service, n in before.items()}  # one job each, not two
    wait_healthy(ds_cid)


@pytest.mark.disruptive
def test_down_and_up_keeps_datasets_keys_jobs_and_results(stack, results_dir):
    keys = {s: exec_in(s, "sha256sum", f"/home/syft/federation/SyftBox/datasites/{e}/public/did.json").stdout
            for s, e in OWNERS.items()}
    jobs = {s: {r["ID"]: r["STATUS"] for r in jobs_table(container(s))} for s in OWNERS}
    history = results_dir / "history"
    history_before = len(list(history.iterdir())) if history.is_dir() else 0
    stopped = time.time()

    compose("down")  # volumes kept
    compose("up", "-d", "--wait", "--wait-timeout", "600", timeout=900)
    run = wait_for_run(results_dir / "run.json", stopped, timeout=300)
    assert run.status == "ok", run  # the DS ran again, on the same owners
    assert sorted(run.datasites) == sorted(DATASITES)

    for service, email in OWNERS.items():
        assert exec_in(service, "sha256sum", f"/home/syft/federation/SyftBox/datasites/{email}/public/did.json"
                       ).stdout == keys[service]
        now = {r["ID"]: r["STATUS"] for r in jobs_table(container(service))}
        # every earlier job, status as it was; one still running then (an abandoned run's, or
        # one closing) was interrupted by the down: the owner says so after the up
        for job_id, status in jobs[service].items():
            assert now[job_id] == status or (status == "job_in_progress" and now[job_id] == "job_run_failed"), \
                (service, job_id, status, now[job_id])
        assert len(now) == len(jobs[service]) + 1  # plus the new run's
        published = subprocess.run(["docker", "logs", container(service)], capture_output=True, text=True).stdout
        assert f"dataset {DATASET} already published" in published
    names = result_line(exec_in("ds", "python", "-c", f"""
import json, syft_rds
print("RESULT " + json.dumps({{h: [d.name for d in syft_rds.init_session(host=h,
    syftbox_client_config_path={CONFIG!r}).dataset.get_all()] for h in {DATASITES!r}}}))
""").stdout)
    # not duplicated: do1 and do2 hold vitals too, do3 the demo share only
    assert {h: sorted(n) for h, n in names.items()} == {
        email: sorted([DATASET, VITALS] if email in DATASITES[:2] else [DATASET]) for email in DATASITES}
    assert len(list((results_dir / "history").iterdir())) == history_before + 1  # the earlier results kept
