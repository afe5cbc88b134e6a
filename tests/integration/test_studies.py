"""Bring your own study: an app this project does not bundle, on datasets in OpenMined's layout.

The second app is examples/moments (two rounds: sums, then squared deviations; no
aggregate.json). do1 and do2 hold `vitals` (private/train.csv + test.csv, outcome y; do1 with
its own mock, do2 without) beside their Pima demo share (conftest: write_vitals).
"""

from __future__ import annotations

import json
import math
import subprocess
import time

from tests.integration.helpers import (DATASET, DATASITES, PROJECT, VITALS, VITALS_COLUMNS, copy_app, ds_finish,
                                       ds_run_record, ds_start, exec_in, expected_moments, health, result_line,
                                       start_owner, stop_owner, wait_healthy, write_lines)

TWO = DATASITES[:2]
DS_HOME = "/home/syft/federation/SyftBox/datasites"


def run_study(app: str, results: str) -> tuple[int, str]:
    return ds_finish(ds_start("ds", env={"FED_APP_DIR": app, "DATASET_NAME": VITALS, "DATASITES": ",".join(TWO),
                                         "RESULTS_DIR": results}), timeout=400)


def read_json(container_path: str) -> dict:
    return json.loads(exec_in("ds", "cat", container_path).stdout)


def files_in(container_path: str) -> set[str]:
    out = exec_in("ds", "sh", "-c", f"cd {container_path} && find . -type f | sed 's|^./||'").stdout
    return set(out.split())


def test_a_two_round_app_of_the_ds_own_on_openmined_style_datasets_equals_the_private_files(stack, vitals_private):
    code, output = run_study(copy_app("ds", "moments"), "/tmp/results-moments")
    assert code == 0, output[-4000:]
    got = read_json("/tmp/results-moments/moments.json")["columns"]
    want = expected_moments(vitals_private["do1"] + vitals_private["do2"])
    assert sorted(got) == sorted(want)
    for c, w in want.items():
        assert got[c]["n"] == w["n"], c
        assert math.isclose(got[c]["mean"], w["mean"], rel_tol=1e-9), (c, got[c], w)
        assert math.isclose(got[c]["variance"], w["variance"], rel_tol=1e-9), (c, got[c], w)

    run = ds_run_record("/tmp/results-moments/run.json")
    assert run.status == "ok" and sorted(run.datasites) == TWO and run.missing_datasites == []
    # who replied, from the Flower messages: two rounds, both owners in each
    assert [(r["round"], sorted(r["replied"]), r["errors"], r["silent"]) for r in run.replies] == [
        (1, TWO, {}, []), (2, TWO, {}, [])]
    assert (run.rounds_done, run.rounds_total) == (2, 2)
    files = files_in("/tmp/results-moments")
    # what the ServerApp wrote in its working folder, and the server's own log, are results
    assert {"moments.json", "server-files/moments.png", "server.log", "run.json"} <= files
    assert "aggregate.json" not in files and not any(f.startswith("mock/") for f in files)  # no preview module
    # the owners approved it: its declared packages are theirs, in range (else the finished job's
    # reason would say "ran with other versions than declared")
    for email in TWO:
        assert run.owners[email].status == "job_run_finished"
        assert "other versions" not in run.owners[email].reason, run.owners[email]


def test_an_app_whose_server_writes_only_a_figure_counts_when_every_owner_replied(stack):
    code, output = run_study(copy_app("ds", "moments-figure", "s/^write-json = true/write-json = false/"),
                             "/tmp/results-figure")
    assert code == 0, output[-4000:]
    run = ds_run_record("/tmp/results-figure/run.json")
    assert run.status == "ok" and sorted(run.datasites) == TWO
    files = files_in("/tmp/results-figure")
    assert "server-files/moments.png" in files
    assert not {"moments.json", "aggregate.json"} & files


def test_an_app_needing_a_package_the_owners_lack_is_rejected_naming_it(stack):
    app = copy_app("ds", "moments-needs", 's/^    "numpy>=2",/    "numpy>=2",\\n    "lifelines>=0.27",/')
    assert "lifelines" in exec_in("ds", "cat", f"{app}/pyproject.toml").stdout
    code, output = ds_finish(ds_start("submit", "120", env={"FED_APP_DIR": app, "DATASET_NAME": VITALS,
                                                            "DATASITES": ",".join(TWO)}), timeout=300)
    assert code == 0, output[-3000:]
    for email, job in result_line(output).items():
        assert job["status"] == "rejected", (email, job)
        assert "not installed on this datasite: lifelines>=0.27" in job["reason"], job


def test_the_bundled_app_on_another_dataset_fails_with_the_apps_own_message(stack):
    """The owner checks only what holds for any dataset; the Pima columns are the app's business:
    each owner's ClientApp answers with its error, which reaches the DS at once (not after
    ROUND_TIMEOUT: an error reply is handed to the ServerApp), and the run fails."""
    t0 = time.monotonic()
    code, output = run_study("/app/fed_app", "/tmp/results-wrong-data")
    assert code == 1, output[-3000:]
    assert time.monotonic() - t0 < 120 + 60  # ROUND_TIMEOUT is 120 s: the errors ended the round
    run = ds_run_record("/tmp/results-wrong-data/run.json")
    assert run.status == "failed" and "no usable replies" in run.error, run.error
    [first] = run.replies
    assert sorted(first["errors"]) == TWO and first["replied"] == [] and first["silent"] == []
    for email, why in first["errors"].items():
        assert "missing column" in why and "Pregnancies" in why, (email, why)


def test_both_datasets_are_published_the_given_mock_as_given_and_the_made_one_synthetic(stack, vitals_private):
    for email in TWO:  # the Pima demo share beside the owner's own dataset
        listed = exec_in("ds", "ls", f"{DS_HOME}/{email}/public/datasets").stdout.split()
        assert {DATASET, VITALS} <= set(listed), (email, listed)
    do1_mock = f"{DS_HOME}/{TWO[0]}/public/datasets/{VITALS}"  # syft-rds publishes the mock's files there
    for name in ("train.csv", "test.csv"):
        synced = exec_in("ds", "cat", f"{do1_mock}/{name}").stdout
        assert synced == (vitals_private["do1"][0].parent.parent / "mock" / name).read_text()
    do2_mock = f"{DS_HOME}/{TWO[1]}/public/datasets/{VITALS}"
    real = {line for p in vitals_private["do2"] for line in p.read_text().splitlines()[1:]}
    for name in ("train.csv", "test.csv"):
        header, *rows = exec_in("ds", "cat", f"{do2_mock}/{name}").stdout.splitlines()
        assert header == ",".join(VITALS_COLUMNS) and rows
        assert not set(rows) & real, name  # made by the owner: no real row


def test_a_mock_sampled_from_the_private_rows_is_refused_and_published_when_the_owner_allows_it(stack, tmp_path):
    datasets = tmp_path / "datasets"
    private = [",".join(VITALS_COLUMNS), *(f"{40 + i},2{i}.5,1{i}0.0,{i % 2}" for i in range(12))]
    write_lines(datasets / "survey" / "private" / "train.csv", private)
    write_lines(datasets / "survey" / "mock" / "train.csv", [private[0], *private[1:4], "41,23.25,120.5,1"])
    email = "sampler@hospital.org"
    name = start_owner(f"{PROJECT}-sampler", email, None, datasets=datasets, start_period="5s", DEMO_PARTITION="off",
                       APPROVE_JOBS_FROM="ds@openmined.org")
    try:
        deadline = time.monotonic() + 60
        while (state := health(name)) is None or state.get("Status") != "unhealthy":
            assert time.monotonic() < deadline, state
            time.sleep(1)
        logs = docker_logs(name)
        assert ("dataset survey: mock/train.csv: 3 of its 4 rows are rows of the private data" in logs), logs[-2000:]
        assert "ALLOW_REAL_ROWS_IN_MOCK=true" in logs
    finally:
        stop_owner(name)
    name = start_owner(f"{PROJECT}-sampler", email, None, datasets=datasets, DEMO_PARTITION="off",
                       APPROVE_JOBS_FROM="ds@openmined.org", ALLOW_REAL_ROWS_IN_MOCK="true")
    try:
        wait_healthy(name, timeout=180)
        logs = docker_logs(name)
        assert "mock/train.csv holds 3 real row(s) of 4: published anyway (ALLOW_REAL_ROWS_IN_MOCK)" in logs
        assert "dataset survey published" in logs and "(with real rows: ALLOW_REAL_ROWS_IN_MOCK)" in logs
    finally:
        stop_owner(name)


def docker_logs(container: str) -> str:
    result = subprocess.run(["docker", "logs", container], capture_output=True, text=True)
    return result.stdout + result.stderr
