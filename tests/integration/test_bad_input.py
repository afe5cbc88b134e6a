"""Bad input gets one clear message, and nothing half-done is published."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest

from tests.integration.helpers import (PROJECT, ds_finish, ds_start, exec_in, health, run_once, start_owner, stop_owner)

HEADER = "Pregnancies,Glucose,BloodPressure,SkinThickness,Insulin,BMI,DiabetesPedigreeFunction,Age,Outcome"
GOOD_ROW = "6,148,72,35,0,33.6,0.627,50,1"

# What holds for any dataset (what a study needs of its columns, its app checks: test_studies.py).
BAD_CSVS = {
    "ragged-row": (f"{HEADER}\n{GOOD_ROW}\n1,85,66\n", "private/bad.csv: line 3 has 3 fields, the header 9"),
    "repeated-column": (HEADER.replace("Insulin", "Glucose") + f"\n{GOOD_ROW}\n",
                        "private/bad.csv: column(s) 'Glucose' appear twice in the header"),
    "no-rows": (f"{HEADER}\n", "private/bad.csv: no data rows"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_owner_with_bad_private_csv_publishes_nothing_and_is_unhealthy(stack, tmp_path, case):
    content, message = BAD_CSVS[case]
    data = tmp_path / "private"
    data.mkdir()
    (data / "bad.csv").write_text(content)
    name = start_owner(f"{PROJECT}-bad-{case}-{uuid.uuid4().hex[:6]}", "bad@openmined.org", data,
                       start_period="1s", APPROVE_JOBS_FROM="ds@openmined.org")
    try:
        deadline = time.monotonic() + 60
        while health(name)["Status"] != "unhealthy":
            assert time.monotonic() < deadline, health(name)
            time.sleep(1)
        assert message in health(name)["Log"][-1]["Output"]
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True).stdout
        lines = [line for line in logs.splitlines() if "dataset not published" in line]
        assert len(lines) == 1 and message in lines[0], logs
        assert "Traceback" not in logs
    finally:
        stop_owner(name)
    # It never reached the network: no datasite of that name on the sync server.
    assert "bad@openmined.org" not in exec_in("syftbox", "ls", "/home/syft/server/snapshot").stdout.split()


def test_data_scientist_naming_an_owner_that_never_appears_fails_clearly(stack):
    code, output = ds_finish(ds_start("ds", env={
        "DATASITES": "do1@openmined.org,ghost@openmined.org", "WAIT_TIMEOUT": "8",
        "RESULTS_DIR": "/tmp/ds-ghost-results"}))
    assert code == 1
    assert "data owner ghost@openmined.org never appeared" in output


def test_missing_setting_fails_fast_naming_it(stack):
    code, output = run_once("ds", "ds", env={"DATASITES": ""})
    assert code == 2
    assert "setting DATASITES is required but not set" in output
