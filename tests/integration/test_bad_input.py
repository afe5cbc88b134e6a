"""Bad input gets one clear message, and nothing half-done is published."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest

from tests.integration.conftest import compose, exec_in, run_once

HEADER = "Pregnancies,Glucose,BloodPressure,SkinThickness,Insulin,BMI,DiabetesPedigreeFunction,Age,Outcome"
GOOD_ROW = "6,148,72,35,0,33.6,0.627,50,1"

BAD_CSVS = {
    "missing-column": (HEADER.replace(",Insulin", "") + "\n6,148,72,35,33.6,0.627,50,1\n",
                       "bad.csv: missing column(s) Insulin"),
    "non-numeric": (f"{HEADER}\n{GOOD_ROW}\n1,abc,66,29,0,26.6,0.351,31,0\n",
                    "bad.csv: column Glucose, line 3: 'abc' is not a number"),
    "no-rows": (f"{HEADER}\n", "bad.csv: no data rows"),
}


def _health(container: str) -> dict:
    out = subprocess.run(["docker", "inspect", "--format", "{{json .State.Health}}", container],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_owner_with_bad_private_csv_publishes_nothing_and_is_unhealthy(stack, tmp_path, case):
    content, message = BAD_CSVS[case]
    data = tmp_path / "private"
    data.mkdir()
    (data / "bad.csv").write_text(content)
    data.chmod(0o755)
    (data / "bad.csv").chmod(0o644)
    name = f"federation-test-bad-{case}-{uuid.uuid4().hex[:6]}"
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "--network", "federation-test_default",
         "--health-interval", "1s", "--health-start-period", "1s", "--health-retries", "2",
         "-e", "SYFTBOX_EMAIL=bad@openmined.org", "-e", "APPROVE_JOBS_FROM=ds@openmined.org",
         "-e", "SYFTBOX_SERVER_URL=http://syftbox:5001",
         "-v", f"{data}:/data/private:ro", "federation:latest", "do"],
        check=True, capture_output=True)
    try:
        deadline = time.monotonic() + 60
        while _health(name)["Status"] != "unhealthy":
            assert time.monotonic() < deadline, _health(name)
            time.sleep(1)
        assert message in _health(name)["Log"][-1]["Output"]
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True).stdout
        lines = [line for line in logs.splitlines() if "dataset not published" in line]
        assert len(lines) == 1 and message in lines[0], logs
        assert "Traceback" not in logs
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    # It never reached the network: no datasite of that name on the sync server.
    assert exec_in("syftbox", "ls", "/home/syft/server/snapshot").stdout.split().count("bad@openmined.org") == 0


def test_data_scientist_naming_an_owner_that_never_appears_fails_clearly(stack):
    code, output = run_once("ds", "ds", env={
        "DATASITES": "do1@openmined.org,ghost@openmined.org", "WAIT_TIMEOUT": "8",
        "FEDERATION_HOME": "/tmp/ds-ghost", "RESULTS_DIR": "/tmp/ds-ghost-results"})
    assert code == 1
    assert "data owner ghost@openmined.org never appeared" in output


def test_missing_setting_fails_fast_naming_it(stack):
    code, output = run_once("ds", "ds", env={"DATASITES": ""})
    assert code == 2
    assert "setting DATASITES is required but not set" in output
