"""One real compose stack for the whole test session (pytest-docker).

The stack runs under its own project name, results folder and port, so a demo a
person left running is not touched. Without a Docker engine every test here fails
(never skips): run `scripts/test`, which installs and starts one where it is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PROJECT = "federation-test"
DATASITES = ["do1@openmined.org", "do2@openmined.org"]
DATASET = "pima-indians-diabetes-database"
OWNERS = {"do1": "do1@openmined.org", "do2": "do2@openmined.org"}


def compose(*args: str, check: bool = True, input: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`docker compose` on the test stack; output captured as text."""
    cmd = ["docker", "compose", "-f", str(REPO_ROOT / "compose.yaml"), "-p", PROJECT, *args]
    result = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def exec_in(service: str, *cmd: str, user: str | None = None, input: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
    """Run a command in the service's container. `docker exec`, not `docker compose exec`:
    the compose build used here always answers 0, whatever the command returned."""
    container = compose("ps", "-q", service).stdout.strip()
    assert container, f"service {service} has no running container"
    args = ["docker", "exec", "-i", *(["-u", user] if user else []), container, *cmd]
    result = subprocess.run(args, capture_output=True, text=True, input=input, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{service}: {' '.join(cmd)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def run_once(service: str, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> tuple[int, str]:
    """A one-off container of `service` (like `compose run --rm`); returns (exit code, output).

    `docker compose run` here does not pass the container's exit code on (as with
    exec), so the container is started detached and waited for.
    """
    env_args = [a for k, v in (env or {}).items() for a in ("-e", f"{k}={v}")]
    cid = compose("run", "-d", "--no-deps", *env_args, service, *args).stdout.strip().splitlines()[-1]
    try:
        code = subprocess.run(["docker", "wait", cid], capture_output=True, text=True,
                              timeout=timeout, check=True).stdout.strip()
        logs = subprocess.run(["docker", "logs", cid], capture_output=True, text=True)
        return int(code), logs.stdout + logs.stderr
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)


def result_line(output: str) -> dict:
    """The JSON a command printed after `RESULT ` (its logs may surround it)."""
    for line in reversed(output.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise AssertionError(f"no RESULT line in:\n{output[-3000:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def results_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="federation-results-"))
    path.chmod(0o777)  # written by the image's uid 1000
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(REPO_ROOT / "compose.yaml")


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
    os.environ["RESULTS_PORT"] = str(_free_port())
    # Volumes of an earlier, interrupted session would hold its datasites: start clean.
    compose("down", "-v", "--remove-orphans")
    # --wait: returns once every service is healthy; the DS is healthy once its run succeeded.
    return ["up --build -d --wait --wait-timeout 600"]


@pytest.fixture(scope="session")
def docker_cleanup():
    return ["down -v --remove-orphans"]


@pytest.fixture(scope="session")
def stack(docker_services, results_dir: Path) -> dict:
    """The finished demo run: its run.json, after `up --wait` returned."""
    run = json.loads((results_dir / "run.json").read_text())
    if run["status"] != "ok":
        logs = compose("logs", "--no-color", check=False).stdout[-6000:]
        pytest.fail(f"the demo run failed: {run.get('error')}\n{logs}", pytrace=False)
    return run


def private_dataset_dir(email: str) -> str:
    """Where syft-rds keeps the owner's private copy: what its jobs read as DATA_DIR."""
    return f"/home/syft/federation/SyftBox/datasites/{email}/private/datasets/{DATASET}"


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
