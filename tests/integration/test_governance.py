"""Data owners govern their datasite: a person approves or rejects, auto-approval can be
pinned to exact code, the DS sees where its jobs stand, and the owner role runs on its own."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest

from federation.common.codehash import code_hash
from federation.scientist.steps import bootstrap_copy
from tests.conftest import REPO_ROOT
from tests.integration.helpers import (PROJECT, assert_aggregate_matches, compose, datasite, docker_exec, ds_finish,
                                       ds_start, ds_stop, exec_in, jobs_table, private_rows, result_line, start_owner,
                                       stop_owner, wait_for_job, wait_healthy)

DS = "ds@openmined.org"


@pytest.fixture(scope="module")
def do3(stack, tmp_path_factory, pima_csv):
    """A third owner, started alone with `docker run` (manual approval), 100 rows of its own."""
    private = private_rows(tmp_path_factory.mktemp("do3-private"), pima_csv, slice(0, 100))
    name = start_owner(f"{PROJECT}-clinic3", "clinic3@openmined.org", private, APPROVAL="manual")
    try:
        wait_healthy(name)
        yield name, private
    finally:
        stop_owner(name)


@pytest.fixture(scope="module")
def do5(stack, tmp_path_factory, pima_csv):
    """A manual owner that never decides: a second owner for runs that need two
    (syft_flwr.bootstrap wants at least two) and whose job must simply stay pending."""
    private = private_rows(tmp_path_factory.mktemp("do5-private"), pima_csv, slice(200, 230))
    name = start_owner(f"{PROJECT}-clinic5", "clinic5@openmined.org", private, APPROVAL="manual")
    try:
        wait_healthy(name)
        yield name
    finally:
        stop_owner(name)


def test_person_approves_on_a_standalone_owner_and_the_aggregate_covers_its_rows(
        stack, do3, private_csvs, tmp_path):
    container, private = do3
    run = ds_start("ds", env={"DATASITES": "do1@openmined.org,do2@openmined.org,clinic3@openmined.org",
                              "RESULTS_DIR": "/tmp/results-three"})
    try:
        job = wait_for_job(container, "pending_code_review", seen=set())
        assert job["SUBMITTER"] == DS and "manual approval" in job["WHY"]
        shown = datasite(container, "show", job["ID"][:6])
        assert shown.returncode == 0, shown.stderr
        assert "===== main.py =====" in shown.stdout and "===== fed_app/client_app.py =====" in shown.stdout
        full_hash = re.search(r"code hash ([0-9a-f]{64})", shown.stdout).group(1)
        assert full_hash.startswith(job["CODE HASH"])
        time.sleep(3)  # nothing runs without a person
        assert [r["STATUS"] for r in jobs_table(container) if r["ID"] == job["ID"]] == ["pending_code_review"]

        approved = datasite(container, "approve", job["ID"][:8])
        assert approved.returncode == 0, approved.stderr
        code, output = ds_finish(run, timeout=300)
    finally:
        ds_stop(run)  # only does something when the test failed before the run ended
    assert code == 0, output[-3000:]
    assert re.search(r"\] server .*clinic3: running .*rounds 0/1", output)  # its live progress line

    aggregate = json.loads(exec_in("ds", "cat", "/tmp/results-three/aggregate.json").stdout)
    assert sorted(aggregate["datasites"]) == ["clinic3@openmined.org", "do1@openmined.org", "do2@openmined.org"]
    files = private_csvs["do1"] + private_csvs["do2"] + [private / "clinic.csv"]
    assert_aggregate_matches(aggregate, files)
    status = {r["ID"]: r for r in jobs_table(container)}[job["ID"]]
    assert status["STATUS"] == "job_run_finished" and "approved by a person" in status["WHY"]


def test_rejection_ends_the_data_scientists_wait_with_the_reason(stack, do3, do5):
    container, _ = do3
    seen = {r["ID"] for r in jobs_table(container)}
    run = ds_start("ds", env={"DATASITES": "clinic3@openmined.org,clinic5@openmined.org", "WAIT_TIMEOUT": "280",
                              "RESULTS_DIR": "/tmp/results-rejected"})
    try:
        job = wait_for_job(container, "pending_code_review", seen)
        rejected = datasite(container, "reject", job["ID"], "--reason", "too broad for this clinic")
        assert rejected.returncode == 0, rejected.stderr
        t0 = time.monotonic()
        code, output = ds_finish(run, timeout=300)
    finally:
        ds_stop(run)
    assert code == 1
    assert "clinic3@openmined.org rejected the job: too broad for this clinic" in output
    assert time.monotonic() - t0 < 60  # at once, not at WAIT_TIMEOUT

    # Decisions that do not fit the job change nothing and say why.
    again = datasite(container, "reject", job["ID"], "--reason", "other")
    assert again.returncode == 2 and "already rejected" in again.stderr
    approve = datasite(container, "approve", job["ID"])
    assert approve.returncode == 2 and "only a pending job can be approved" in approve.stderr
    unknown = datasite(container, "approve", "ffffffffdead")
    assert unknown.returncode == 2 and "no job with id 'ffffffffdead'" in unknown.stderr
    row = {r["ID"]: r for r in jobs_table(container)}[job["ID"]]
    assert row["STATUS"] == "rejected" and row["WHY"] == "too broad for this clinic"


def test_auto_approval_pinned_to_a_code_hash(stack, do5, tmp_path, pima_csv):
    """Pinned to the hash of the DS's app: that app runs, the same app changed by one line
    is rejected with the reason, and `datasite jobs` says why for each."""
    owners = ["clinic4@openmined.org", "clinic5@openmined.org"]
    pinned = code_hash(bootstrap_copy(REPO_ROOT / "fed_app", tmp_path / "pin", DS, owners))
    changed = tmp_path / "changed" / "fed_app"
    shutil.copytree(REPO_ROOT / "fed_app", changed, ignore=shutil.ignore_patterns("__pycache__"))
    with (changed / "fed_app" / "client_app.py").open("a") as f:
        f.write("\n# one more line\n")
    ds = compose("ps", "-q", "ds").stdout.strip()
    subprocess.run(["docker", "cp", str(changed), f"{ds}:/tmp/changed-fed_app"], check=True)

    (tmp_path / "private").mkdir()
    private = private_rows(tmp_path / "private", pima_csv, slice(100, 150))
    name = start_owner(f"{PROJECT}-clinic4", "clinic4@openmined.org", private, APPROVAL="auto",
                       APPROVE_JOBS_FROM=DS, APPROVED_CODE_HASHES=pinned, UNAPPROVED_JOBS="reject",
                       JOB_TIMEOUT="5")
    try:
        wait_healthy(name)
        env = {"DATASITES": ",".join(owners)}
        code, output = ds_finish(ds_start("submit", "15", env=env))
        assert code == 0, output[-3000:]
        genuine = result_line(output)["clinic4@openmined.org"]
        assert genuine["status"] in {"approved", "job_in_progress", "job_run_failed"}, genuine

        code, output = ds_finish(ds_start("submit", "20", env=env | {"FED_APP_DIR": "/tmp/changed-fed_app"}))
        assert code == 0, output[-3000:]
        other = result_line(output)["clinic4@openmined.org"]
        assert other["status"] == "rejected"
        assert "is not one of the owner's approved hashes" in other["reason"]

        # The approved job ran, with no Flower server to answer it, until the owner's limit.
        deadline = time.monotonic() + 60
        while (row := {r["ID"]: r for r in jobs_table(name)}[genuine["job"][:12]])["STATUS"] != "job_run_failed":
            assert time.monotonic() < deadline, row
            time.sleep(1)
        assert row["CODE HASH"] == pinned[:16]
        assert row["WHY"] == "stopped after the owner's limit of 5 s (JOB_TIMEOUT)"
        decision = json.loads(docker_exec(name, "cat", f"/home/syft/federation/state/jobs/{genuine['job']}/runner.json").stdout)
        assert decision["decision"]["approve"] is True and "code hash" in decision["decision"]["reason"]
        rejected_row = {r["ID"]: r for r in jobs_table(name)}[other["job"][:12]]
        assert rejected_row["STATUS"] == "rejected" and rejected_row["CODE HASH"] != pinned[:16]
        assert "not one of the owner's approved hashes" in rejected_row["WHY"]
    finally:
        stop_owner(name)


def test_data_scientist_sees_where_its_jobs_stand(stack):
    out = exec_in("ds", "datasite", "status",
                  env={"DATASITES": "do1@openmined.org,do2@openmined.org,ghost@openmined.org"}).stdout
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    for owner in ("do1@openmined.org", "do2@openmined.org"):
        assert re.match(rf"{re.escape(owner)}\s+yes\s+yes\s+job_run_finished", rows[owner]), out
    assert re.match(r"ghost@openmined.org\s+no\s+no\s+-", rows["ghost@openmined.org"]), out
