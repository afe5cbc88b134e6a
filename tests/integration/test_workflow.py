"""The data scientist's whole workflow on real containers: numbers, roles, privacy."""

from __future__ import annotations

import json
import time

from PIL import Image

from tests.integration.helpers import (DATASET, DATASITES, FEATURES, OWNERS, as_party, assert_aggregate_matches,
                                       compose, exec_in, finish_once, grep_rows, private_lines, result_line, start_once)


def test_aggregate_equals_histograms_of_both_owners_private_data(stack, results_dir, private_csvs):
    aggregate = json.loads((results_dir / "aggregate.json").read_text())
    assert aggregate["dataset"] == DATASET
    assert sorted(aggregate["datasites"]) == sorted(DATASITES)

    files = [p for owner_files in private_csvs.values() for p in owner_files]
    assert sum(len(p.read_text().splitlines()) - 1 for p in files) == 768  # both demo shares, no row twice
    assert_aggregate_matches(aggregate, files)


def test_run_record_names_every_owner_and_step(stack):
    assert sorted(stack.datasites) == sorted(DATASITES)
    for email in DATASITES:
        assert stack.owners[email].status == "job_run_finished"
        assert 0 < stack.owners[email].mock_rows < 100
    assert set(stack.steps) == {"login", "explore", "bootstrap", "submit", "approval", "server", "finish"}


GUEST_PROBE = """
import json, syft_rds
out = {}
for host in %r:
    s = syft_rds.init_session(host=host, syftbox_client_config_path="/home/syft/federation/config.json")
    d = s.dataset.get(name=%r)
    try:
        d.get_private_path(); refused = False
    except PermissionError:
        refused = True
    out[host] = {"is_admin": s.is_admin, "private_refused": refused,
                 "mock_files": sorted(p.name for p in d.get_mock_path().glob("*.csv"))}
print("RESULT " + json.dumps(out))
"""


def test_data_scientist_is_a_guest_refused_the_private_path(stack):
    result = exec_in("ds", "python", "-c", GUEST_PROBE % (DATASITES, DATASET))
    seen = result_line(result.stdout)
    for email in DATASITES:
        assert seen[email]["is_admin"] is False
        assert seen[email]["private_refused"] is True
        k = DATASITES.index(email) + 1  # the owner's demo share, mocked under the same file name
        assert seen[email]["mock_files"] == [f"pima-part-{k}-of-{len(DATASITES)}.csv"]


def test_no_private_row_reaches_the_sync_server_or_the_data_scientist(stack, private_csvs):
    patterns = private_lines(private_csvs)
    # The search works: each owner's own container holds its rows.
    assert grep_rows("do1", "/home/syft/federation", patterns)
    assert grep_rows("syftbox", "/home/syft/server", patterns) == []
    assert grep_rows("ds", "/", patterns) == []


def test_mock_data_holds_no_real_row(stack, private_csvs, tmp_path):
    real = set(private_lines(private_csvs).splitlines())
    for service, email in OWNERS.items():
        compose("cp", f"ds:/home/syft/federation/SyftBox/datasites/{email}/public/datasets/{DATASET}/.",
                str(tmp_path / service))
        [mock_file] = (tmp_path / service).glob("pima-part-*.csv")
        mock = mock_file.read_text().splitlines()
        assert mock[0].split(",") == FEATURES + ["Outcome"]
        assert len(mock) > 10 and not real & set(mock[1:])


def test_figures_are_valid_pngs(stack, results_dir):
    for feature in FEATURES:
        path = results_dir / "figures" / f"{feature}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            assert img.width >= 600 and img.height >= 300


def test_results_are_served_over_http(stack, results_dir):
    fetch = "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen('http://localhost:8080' + sys.argv[1]).read().decode())"
    served = exec_in("ds", "python", "-c", fetch, "/aggregate.json").stdout
    assert json.loads(served) == json.loads((results_dir / "aggregate.json").read_text())
    page = exec_in("ds", "python", "-c", fetch, "/").stdout
    assert all(f'src="/figures/{feature}.png?v=' in page for feature in FEATURES)  # more: test_results_page


def test_job_from_a_submitter_not_on_the_allowlist_never_runs(stack, tmp_path):
    # a party the operator invited (it has a kit), whom no owner trusts
    env, volumes = as_party("intruder@example.org", tmp_path)
    code, output = finish_once(start_once("ds", "submit", "15", env=env | {"FEDERATION_HOME": "/tmp/intruder"},
                                          volumes=volumes))
    assert code == 0, output
    jobs = result_line(output)
    for service, email in OWNERS.items():
        job = jobs[email]["job"]
        assert jobs[email]["status"] == "pending_code_review"
        record = json.loads(exec_in(service, "cat",
                                    f"/home/syft/federation/state/jobs/{job}/runner.json").stdout)
        assert record["submitter"] == "intruder@example.org"
        assert record["decision"]["approve"] is False
        assert "not on the allowlist" in record["decision"]["reason"]
        assert "run" not in record
        assert "code" not in exec_in(service, "ls", f"/home/syft/federation/state/jobs/{job}").stdout


WRITE_INTO_JOB_STORE = """
import pathlib
p = pathlib.Path("/home/syft/federation/SyftBox/datasites/do1@openmined.org/app_data/RDS/store/job/forged.yaml")
p.parent.mkdir(parents=True, exist_ok=True)
p.write_text("status: approved\\n")
"""


def test_a_guest_cannot_write_into_an_owner_job_store(stack):
    exec_in("ds", "python", "-c", WRITE_INTO_JOB_STORE)
    store = "/home/syft/federation/SyftBox/datasites/do1@openmined.org/app_data/RDS/store/job"
    deadline = time.monotonic() + 20
    refused = False
    while not refused:  # the guest's client learns the server refused the upload
        assert exec_in("do1", "test", "-e", f"{store}/forged.yaml", check=False).returncode == 1
        refused = "forged.syftrejected.yaml" in exec_in("ds", "ls", store).stdout.split()
        assert refused or time.monotonic() < deadline, "the guest's write was neither refused nor delivered"
        time.sleep(0.5)
    time.sleep(3)  # a few more sync loops: still nothing at the owner or on the server
    assert exec_in("do1", "test", "-e", f"{store}/forged.yaml", check=False).returncode == 1
    assert exec_in("syftbox", "find", "/home/syft/server", "-name", "forged*").stdout.strip() == ""
