"""One real compose stack for the whole test session (pytest-docker): its fixtures.

The stack runs under its own project name, results folder and port, so a demo a
person left running is not touched. Without a Docker engine every test here fails
(never skips): run `scripts/test`, which installs and starts one where it is missing.
The helpers the tests use on it are in tests/integration/helpers.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from federation.scientist.run_record import RunRecord
from tests.integration.helpers import (OWNERS, PROJECT, VITALS, compose, compose_files, free_port, private_dataset_dir,
                                       write_vitals)


def pytest_collection_modifyitems(items):
    """Tests that restart or recreate the shared stack go last, so no other test sees it mid-way."""
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)


@pytest.fixture(scope="session")
def results_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="federation-results-"))
    path.chmod(0o777)  # written by the image's uid 1000
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_compose_file() -> list[str]:
    return compose_files()


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return PROJECT


@pytest.fixture(scope="session")
def docker_setup(results_dir: Path):
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail("no Docker engine answers `docker info`: run the tests with scripts/test, "
                    "which installs and starts one\n" + probe.stderr[-500:], pytrace=False)
    if not os.environ.get("BASE_IMAGE"):
        pytest.fail("BASE_IMAGE is not set: run the tests with scripts/test (it picks the official "
                    "or the offline base image)", pytrace=False)
    os.environ["RESULTS_HOST_DIR"] = str(results_dir)
    os.environ["RESULTS_PORT"] = str(free_port())
    os.environ["NOTEBOOK_PORT"] = str(free_port())  # ds publishes the notebook's port too
    os.environ["SYNC_PORT"] = str(free_port())  # the sync server's, for the remote owner
    # do1 and do2 also hold a second study's dataset, in OpenMined's layout (write_vitals).
    datasets = Path(tempfile.mkdtemp(prefix="federation-datasets-"))
    write_vitals(datasets)
    os.environ["DO1_DATASETS"], os.environ["DO2_DATASETS"] = str(datasets / "do1"), str(datasets / "do2")
    # Small disk limits for the executors, so the disk-filling job hits them at once.
    os.environ["JOB_DISK_MB"], os.environ["JOB_FILE_MB"] = "64", "32"
    # Ended jobs leave the synced trees 2 minutes after they end: a test reads its own run's
    # synced files at once, and the session's later runs do not slow down with the earlier
    # ones' files (about 0.3 s per run kept, measured with scripts/soak). test_history's
    # owners check the retention itself.
    os.environ["SYNCED_RETENTION"] = "2m"
    # `up --wait` and the restart tests wait on health, which a container reaches one interval
    # after it started: 5 s here, 30 s by default (each check costs Docker CPU, see compose.yaml).
    os.environ["HEALTHCHECK_INTERVAL"] = "5s"
    # Volumes of an earlier, interrupted session would hold its datasites: start clean.
    compose("down", "-v", "--remove-orphans")
    # --wait: returns once every service is healthy; the DS is healthy once its run succeeded.
    return ["up --build -d --wait --wait-timeout 600"]


@pytest.fixture(scope="session")
def docker_cleanup():
    return ["down -v --remove-orphans"]


@pytest.fixture(scope="session")
def stack(docker_services, results_dir: Path) -> dict:
    """The finished demo run: its run record, after `up --wait` returned."""
    run = RunRecord.read(results_dir / "run.json")
    if run is None or run.status != "ok":
        logs = compose("logs", "--no-color", check=False).stdout[-6000:]
        pytest.fail(f"the demo run failed: {run.error if run else 'no run.json'}\n{logs}", pytrace=False)
    return run


@pytest.fixture(scope="session")
def private_csvs(stack, tmp_path_factory) -> dict[str, list[Path]]:
    """Each owner's private CSVs, copied out of its container (the test's ground truth)."""
    out = {}
    for service, email in OWNERS.items():
        dest = tmp_path_factory.mktemp(service)
        compose("cp", f"{service}:{private_dataset_dir(email)}/.", str(dest))
        out[service] = sorted(dest.glob("*.csv"))
        assert out[service], f"no private CSV found in {service}"
    return out


@pytest.fixture(scope="session")
def vitals_private(stack) -> dict[str, list[Path]]:
    """do1's and do2's private vitals CSVs, as the stack mounted them (the test's ground truth)."""
    return {service: sorted((Path(os.environ[f"{service.upper()}_DATASETS"]) / VITALS / "private").glob("*.csv"))
            for service in ("do1", "do2")}
