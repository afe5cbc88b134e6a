"""History does not pile up in the synced trees (SYNCED_RETENTION).

Two owners started alone (as a hospital runs one) keep an ended job's files in the synced
tree for 30 s. The DS runs the flow on them twice: each run's aggregate is right, the
owners' job history keeps every job (its record and code, in the state), and the synced trees
(each owner's own, the sync server's copy of it, the DS's copy of it, the DS's own, where
nothing of a run is kept) are no larger after the second run than after the first (one run
adds ~16 files per owner).
"""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.helpers import (PROJECT, assert_aggregate_matches, datasite, docker_exec, docker_logs,
                                       ds_finish, ds_start, exec_in, jobs_table, private_rows, start_owner, stop_owner, wait_healthy)

DS_EMAIL = "ds@openmined.org"
OWNERS = {f"{PROJECT}-clinic{k}": f"clinic{k}@openmined.org" for k in (6, 7)}
RETENTION = "30s"
DATASITES = "/home/syft/federation/SyftBox/datasites"
MOVED = "/home/syft/federation/state/jobs"  # jobs/<id>/synced/ in each owner's state
SLACK = 2  # files: a permission or schema file written once more; one run leaves ~10


@pytest.fixture(scope="module")
def owners(stack, tmp_path_factory, pima_csv):
    """The two owners (auto-approving the DS), each with 40 rows of its own."""
    privates = {}
    try:
        for k, (name, email) in enumerate(OWNERS.items()):
            privates[name] = private_rows(tmp_path_factory.mktemp(name), pima_csv, slice(300 + 40 * k, 340 + 40 * k))
            start_owner(name, email, privates[name], APPROVAL="auto", APPROVE_JOBS_FROM=DS_EMAIL,
                        SYNCED_RETENTION=RETENTION)
        for name in OWNERS:
            wait_healthy(name, timeout=240)
        yield privates
    finally:
        for name in OWNERS:
            stop_owner(name)


def run_flow(results: str) -> dict:
    code, output = ds_finish(ds_start("ds", env={"DATASITES": ",".join(OWNERS.values()), "RESULTS_DIR": results}),
                             timeout=400)
    assert code == 0, output[-4000:]
    return json.loads(exec_in("ds", "cat", f"{results}/aggregate.json").stdout)


def file_count(container_or_service: str, folder: str, service: bool = False) -> int:
    cmd = ("sh", "-c", f"find {folder} -type f 2>/dev/null | wc -l")
    out = exec_in(container_or_service, *cmd).stdout if service else docker_exec(container_or_service, *cmd).stdout
    return int(out.strip())


def trees() -> dict[str, int]:
    """Files in every synced tree the two owners' jobs touch."""
    counts = {}
    for name, email in OWNERS.items():
        counts[f"{email} (its own)"] = file_count(name, f"{DATASITES}/{email}")
        counts[f"{email} (on the sync server)"] = file_count("syftbox", f"/home/syft/server/snapshot/{email}", True)
        counts[f"{email} (the DS's copy)"] = file_count("ds", f"{DATASITES}/{email}", True)
    counts["the DS's own"] = file_count("ds", f"{DATASITES}/{DS_EMAIL}", True)
    return counts


def moved_jobs(name: str) -> int:
    return int(docker_exec(name, "sh", "-c", f"ls -d {MOVED}/*/synced/job.yaml 2>/dev/null | wc -l").stdout.strip())


def settle(jobs: int, timeout: float = 150) -> dict[str, int]:
    """Once each owner has moved `jobs` ended jobs out (each 30 s after it ended, swept every
    10 s) and the other copies have followed (three equal counts in a row): the counts."""
    deadline = time.monotonic() + timeout
    while any(moved_jobs(name) < jobs for name in OWNERS):
        assert time.monotonic() < deadline, "\n".join(
            f"{name}: {moved_jobs(name)} of {jobs} job(s) moved; its jobs:\n{datasite(name, 'jobs').stdout}"
            f"its log's end:\n{docker_logs(name, '--tail', '25')}" for name in OWNERS)
        time.sleep(2)
    seen = [trees()]
    while len(seen) < 3 or not seen[-1] == seen[-2] == seen[-3]:
        assert time.monotonic() < deadline, seen[-3:]
        time.sleep(1)
        seen.append(trees())
    return seen[-1]


def test_a_second_run_leaves_the_synced_trees_as_they_were_after_the_first(owners):
    files = [f for private in owners.values() for f in sorted(private.glob("*.csv"))]
    assert_aggregate_matches(run_flow("/tmp/results-history-1"), files)
    after_first = settle(jobs=1)
    assert_aggregate_matches(run_flow("/tmp/results-history-2"), files)
    after_second = settle(jobs=2)
    print("files after the first run:", after_first, "\nafter the second:", after_second)
    grown = {tree: (after_first[tree], n) for tree, n in after_second.items() if n > after_first[tree] + SLACK}
    assert not grown, f"synced trees grew with the runs (after the first, after the second): {grown}"

    # ... and nothing of the history is lost: every job listed, with its code, in the owner's state
    for name in OWNERS:
        jobs = jobs_table(name)
        assert len(jobs) == 2 and {j["STATUS"] for j in jobs} == {"job_run_finished"}, jobs
        shown = docker_exec(name, "datasite", "show", jobs[0]["ID"][:8])
        assert shown.returncode == 0 and "===== main.py =====" in shown.stdout, shown.stderr
        assert moved_jobs(name) == 2
