"""The integration tests' hands on the stack: docker and compose CLI wrappers, the session
stack's names, and checks shared by several test files (helpers only; fixtures are in conftest).

`docker exec`, `docker wait` and `docker logs` wherever an exit code matters: the compose
build used here answers 0 for `compose exec` and `compose run`, whatever the command returned.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from federation.scientist.run_record import RunRecord
from tests.conftest import REPO_ROOT

# One compose project per test session; override to run two sessions side by side.
PROJECT = os.environ.get("FEDERATION_TEST_PROJECT", "federation-test")
# The session's stack has three owners, added the way a user adds them (scripts/owners).
OWNER_COUNT = 3
OWNERS = {f"do{k}": f"do{k}@openmined.org" for k in range(1, OWNER_COUNT + 1)}
DATASITES = list(OWNERS.values())
DATASET = "pima-indians-diabetes-database"
# A second study's data, in OpenMined's example layout: do1 and do2 hold it (do1 with its own
# synthetic mock, do2 without one), beside their Pima demo share.
VITALS = "vitals"
VITALS_COLUMNS = ("age", "bmi", "glucose", "y")


def write_vitals(root: Path) -> dict[str, Path]:
    """do1's and do2's `vitals` dataset folders under root/<service>/ (what DO1_DATASETS and
    DO2_DATASETS mount): private/train.csv + test.csv, outcome y; do1 also mock/ and README.md."""
    import random

    folders = {}
    for k, service in enumerate(("do1", "do2"), start=1):
        rng = random.Random(k)
        folder = root / service / VITALS

        def rows(n: int, rng=rng) -> list[str]:
            return [f"{rng.randint(20, 90)},{rng.uniform(17, 45):.2f},{rng.uniform(60, 200):.1f},{rng.randint(0, 1)}"
                    for _ in range(n)]

        for name, n in (("train.csv", 60 + 10 * k), ("test.csv", 25)):
            write_lines(folder / "private" / name, [",".join(VITALS_COLUMNS), *rows(n)])
        if service == "do1":  # its own mock: rows of another draw (decimals no real row shares)
            mock = random.Random(99)
            for name in ("train.csv", "test.csv"):
                write_lines(folder / "mock" / name, [",".join(VITALS_COLUMNS)] + [
                    f"{mock.randint(20, 90)},{mock.uniform(17, 45):.3f},{mock.uniform(60, 200):.2f},"
                    f"{mock.randint(0, 1)}" for _ in range(15)])
            write_lines(folder / "README.md", ["# vitals", "", "Age, BMI and glucose of a clinic's patients; y: "
                                                                "diabetes within five years."])
        folders[service] = folder
    for path in [root, *root.rglob("*")]:  # read by the image's uid 1000
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folders


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@functools.cache
def compose_files() -> list[str]:
    """compose.yaml plus the override scripts/owners writes for the session's owners."""
    root = Path(tempfile.gettempdir()) / f"{PROJECT}-owners"
    shutil.rmtree(root, ignore_errors=True)
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "owners.py"), "--demo", str(OWNER_COUNT),
                    "--root", str(root)], check=True, capture_output=True)
    return [str(REPO_ROOT / "compose.yaml"), str(root / "compose.owners.yaml")]


def compose(*args: str, check: bool = True, input: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`docker compose` on the test stack; output captured as text."""
    cmd = ["docker", "compose", *(a for f in compose_files() for a in ("-f", f)), "-p", PROJECT, *args]
    result = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def exec_in(service: str, *cmd: str, user: str | None = None, input: str | None = None,
            check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a command in the service's container. `docker exec`, not `docker compose exec`:
    the compose build used here always answers 0, whatever the command returned."""
    container = compose("ps", "-q", service).stdout.strip()
    assert container, f"service {service} has no running container"
    env_args = [a for k, v in (env or {}).items() for a in ("-e", f"{k}={v}")]
    args = ["docker", "exec", "-i", *(["-u", user] if user else []), *env_args, container, *cmd]
    # (docker exec answers with the command's own exit code)
    result = subprocess.run(args, capture_output=True, text=True, input=input, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{service}: {' '.join(cmd)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def start_once(service: str, *args: str, env: dict[str, str] | None = None,
               volumes: dict[str, str] | None = None) -> str:
    """Start a one-off container of `service` (like `compose run`), detached; returns its id."""
    env_args = [a for k, v in (env or {}).items() for a in ("-e", f"{k}={v}")]
    vol_args = [a for host, inside in (volumes or {}).items() for a in ("-v", f"{host}:{inside}")]
    return compose("run", "-d", "--no-deps", *env_args, *vol_args, service, *args).stdout.strip().splitlines()[-1]


def finish_once(cid: str, timeout: float = 300) -> tuple[int, str]:
    """Wait for a one-off container; returns (exit code, output) and removes it.

    `docker compose run` here does not pass the container's exit code on (as with
    exec), so the container is started detached and waited for.
    """
    try:
        code = subprocess.run(["docker", "wait", cid], capture_output=True, text=True,
                              timeout=timeout, check=True).stdout.strip()
        return int(code), docker_logs(cid)
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)


def ds_start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`federation ARGS` inside the running DS container, through its own SyftBox client
    (a second client for the DS's identity elsewhere would make new keys and fight it)."""
    container = compose("ps", "-q", "ds").stdout.strip()
    env_args = [a for k, v in (env or {}).items() for a in ("-e", f"{k}={v}")]
    return subprocess.Popen(["docker", "exec", *env_args, container, "federation", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def ds_run_record(container_path: str):
    """The DS's run.json at `container_path` in the ds container, read as the page reads it."""
    return RunRecord.from_json(json.loads(exec_in("ds", "cat", container_path).stdout))


STOP_SECOND_RUNS = """
import os, signal
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
    except OSError:
        continue
    if pid != "1" and b"/opt/app/bin/federation" in cmd:
        os.kill(int(pid), signal.SIGTERM)
"""


def ds_stop(proc: subprocess.Popen) -> None:
    """Stop a `ds_start` run that is still going (a failed test must not leave it waiting
    on owners, whose runners would then hold its jobs): killing `docker exec` alone would not."""
    if proc.poll() is None:
        exec_in("ds", "python", "-c", STOP_SECOND_RUNS, check=False)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def ds_finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        ds_stop(proc)
        raise AssertionError(f"still running after {timeout:.0f} s") from None
    return proc.returncode, output


def run_once(service: str, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> tuple[int, str]:
    return finish_once(start_once(service, *args, env=env), timeout)


FEATURES = ["Pregnancies", "Glucose", "BloodPressure", "SkinThickness", "Insulin",
            "BMI", "DiabetesPedigreeFunction", "Age"]
ZERO_IS_MISSING = {"Glucose", "BloodPressure", "SkinThickness", "Insulin", "BMI"}


def assert_aggregate_matches(aggregate: dict, csv_files: list[Path], k: int | None = None) -> None:
    """aggregate.json equals what numpy computes here from the owners' private CSVs, after each
    owner's small-count rule (counts 1..k-1 of that owner's reply sent as 0; k: the default
    SMALL_COUNT_K). Each owner's files are in a folder of their own (the `private_csvs` fixture)."""
    import numpy as np
    import pandas as pd
    import pytest

    from federation.common.settings import EgressRules

    k = EgressRules().small_count_k if k is None else k
    shown = lambda n: 0 if 0 < n < k else n  # noqa: E731
    owners: dict[Path, list[Path]] = {}
    for p in csv_files:
        owners.setdefault(p.parent, []).append(p)
    tables = [pd.concat([pd.read_csv(p) for p in files]) for files in owners.values()]
    assert set(aggregate["features"]) == set(FEATURES)
    for feature in FEATURES:
        edges = np.array(aggregate["features"][feature]["bin_edges"])
        for outcome in (0, 1):
            hist, count, missing, total = np.zeros(len(edges) - 1, dtype=int), 0, 0, 0.0
            for private in tables:
                values = private.loc[private["Outcome"] == outcome, feature]
                gone = values.isna() | ((values == 0) if feature in ZERO_IS_MISSING else False)
                kept = values[~gone].to_numpy(dtype=float)
                hist += [shown(int(n)) for n in np.histogram(kept, bins=edges)[0]]
                count, missing, total = count + shown(len(kept)), missing + shown(int(gone.sum())), total + kept.sum()
            got = aggregate["features"][feature]["by_outcome"][str(outcome)]
            assert got["hist"] == hist.tolist(), (feature, outcome)
            assert got["count"] == count, (feature, outcome)
            assert got["missing"] == missing, (feature, outcome)
            assert got["mean"] == pytest.approx(total / count if count else 0.0), (feature, outcome)


def private_lines(private_csvs) -> str:
    lines = []
    for files in private_csvs.values():
        for path in files:
            lines += path.read_text().splitlines()[1:]
    assert len(lines) == 768
    return "\n".join(lines) + "\n"


def grep_rows(service: str, root: str, patterns: str) -> list[str]:
    """Files under `root` in `service` holding any of the private rows, whole lines."""
    # The demo's "private" rows are shares of the public Pima file, which the DS may hold
    # (for its Flower simulation): that one file is not a leak.
    result = exec_in(service, "grep", "-rlFx", "--exclude-dir=proc", "--exclude-dir=sys",
                     "--exclude-dir=dev", "--exclude=pima-indians-diabetes.csv", "-f", "/dev/stdin", root,
                     user="root", input=patterns, check=False)
    assert result.returncode in (0, 1), result.stderr
    return result.stdout.split()


def result_line(output: str) -> dict:
    """The JSON a command printed after `RESULT ` (its logs may surround it)."""
    for line in reversed(output.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise AssertionError(f"no RESULT line in:\n{output[-3000:]}")


def invite(email: str, *args: str) -> str:
    """A kit for `email` from the session's sync server (`federation invite`), as JSON text."""
    return exec_in("syftbox", "federation", "invite", email, *args).stdout


def write_kit(path: Path, kit: str) -> Path:
    path.write_text(kit)
    path.chmod(0o644)  # readable by the image's uid 1000
    path.parent.chmod(0o755)
    return path


def as_party(email: str, folder: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(env, volumes) for a one-off container (`start_once`) acting as `email`, with its own kit."""
    kit = write_kit(folder / f"{email}.kit", invite(email))
    return {"SYFTBOX_EMAIL": email, "KIT_FILE": "/run/other-kit/kit.json"}, {str(kit): "/run/other-kit/kit.json:ro"}


def start_owner(name: str, email: str, private_dir: Path | None, start_period: str = "120s", kit: Path | None = None,
                network: str | None = None, docker_args: tuple[str, ...] = (), datasets: Path | None = None,
                **env: str) -> str:
    """A data owner started on its own with `docker run`, as a hospital would, with a kit the
    operator issued it (or `kit`), on the test network (or `network`); returns the container
    name. Remove it with `docker rm -f`. Its data: `private_dir` as the private part of its
    Pima dataset, or `datasets`, a folder of dataset folders. A short `start_period` lets a
    failing owner turn unhealthy within seconds."""
    mounted = private_dir if datasets is None else datasets
    for path in [mounted, *mounted.rglob("*")]:  # readable by the image's uid 1000
        path.chmod(0o755 if path.is_dir() else 0o644)
    target = f"/data/datasets/{DATASET}/private" if datasets is None else "/data/datasets"
    if kit is None:
        kit = write_kit(mounted.parent / f"{name}.kit", invite(email))
    env_args = [a for k, v in ({"SYFTBOX_EMAIL": email, "SYFTBOX_SYNC_INTERVAL": "0.5"} | env).items()
                for a in ("-e", f"{k}={v}")]
    # its executor first, as compose.do.yaml runs it: no network, nothing but the jobs volume
    subprocess.run(["docker", "run", "-d", "--name", f"{name}-executor", *EXECUTOR_ARGS,
                    "-v", f"{name}-jobs:/jobs", "federation:latest", "executor"],
                   check=True, capture_output=True, text=True)
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "--network", network or f"{PROJECT}_default",
         "--health-interval", "5s", "--health-start-period", start_period, "--health-retries", "2",
         *docker_args, *env_args, "-v", f"{mounted}:{target}:ro", "-v", f"{name}-jobs:/jobs",
         "-v", f"{kit}:/run/federation/kit/kit.json:ro", "federation:latest", "do"],
        check=True, capture_output=True, text=True)
    return name


# What compose.yaml's x-executor says, for `docker run`.
EXECUTOR_ARGS = ("--network", "none", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
                 "--memory", "2g", "--memory-swap", "2g", "--pids-limit", "256", "--cpu-shares", "256",
                 "--tmpfs", "/tmp:size=64m",
                 "-u", "1001:1001")


def stop_owner(name: str) -> None:
    """Remove an owner `start_owner` started, its executor and its jobs volume."""
    subprocess.run(["docker", "rm", "-f", name, f"{name}-executor"], capture_output=True)
    subprocess.run(["docker", "volume", "rm", "-f", f"{name}-jobs"], capture_output=True)


def health(container: str) -> dict:
    out = subprocess.run(["docker", "inspect", "--format", "{{json .State.Health}}", container],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def wait_healthy(container: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while (state := health(container)["Status"]) != "healthy":
        if state == "unhealthy" or time.monotonic() > deadline:
            logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True)
            raise AssertionError(f"{container} is {state}:\n{logs.stdout[-3000:]}\n{logs.stderr[-3000:]}")
        time.sleep(1)


def docker_exec(container: str, *cmd: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env_args = [a for k, v in (env or {}).items() for a in ("-e", f"{k}={v}")]
    return subprocess.run(["docker", "exec", *env_args, container, *cmd], capture_output=True, text=True, timeout=300)


def docker_logs(container: str, *options: str) -> str:
    """What the container logged (`docker logs` options such as --tail N), both streams."""
    logs = subprocess.run(["docker", "logs", *options, container], capture_output=True, text=True)
    return logs.stdout + logs.stderr


def datasite(container: str, *args: str) -> subprocess.CompletedProcess:
    return docker_exec(container, "datasite", *args)


def jobs_table(container: str) -> list[dict]:
    out = datasite(container, "jobs")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    if lines == ["no jobs"]:
        return []
    header = re.split(r"\s{2,}", lines[0])
    starts = [lines[0].index(name) for name in header]  # columns are fixed-width
    return [{name: line[start:end].strip() for name, start, end in zip(header, starts, [*starts[1:], None])}
            for line in lines[1:]]


def wait_for_job(container: str, status: str, seen: set[str], timeout: float = 120) -> dict:
    """The first job listed with `status` whose id is not in `seen`, once the runner has
    recorded why (a job listed before its review has an empty WHY)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for row in jobs_table(container):
            if row["STATUS"] == status and row["ID"] not in seen and row["WHY"]:
                return row
        time.sleep(1)
    raise AssertionError(f"no new {status} job on {container}: {jobs_table(container)}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def private_dataset_dir(email: str) -> str:
    """Where syft-rds keeps the owner's private copy: what its jobs read as DATA_DIR."""
    return f"/home/syft/federation/SyftBox/datasites/{email}/private/datasets/{DATASET}"


def copy_app(service: str, name: str, edit: str = "") -> str:
    """examples/moments copied into the service's container (ds, notebook) as /tmp/<name>, `edit`
    (a sed script) applied to its pyproject.toml: the DS brings its own app, no image build."""
    container = compose("--profile", "notebook", "ps", "-q", service).stdout.strip()
    assert container, f"service {service} has no running container"
    path = f"/tmp/{name}"

    def run(*cmd: str, user: str = "syft") -> None:
        subprocess.run(["docker", "exec", "-u", user, container, *cmd], check=True, capture_output=True)

    run("rm", "-rf", path)
    subprocess.run(["docker", "cp", str(REPO_ROOT / "examples" / "moments"), f"{container}:{path}"], check=True)
    run("chown", "-R", "syft:syft", path, user="root")
    if edit:
        run("sed", "-i", edit, f"{path}/pyproject.toml")
    return path


def expected_moments(files) -> dict[str, dict]:
    """Count, mean and sample variance per column over every file, computed here from the rows."""
    columns: dict[str, list[float]] = {c: [] for c in VITALS_COLUMNS}
    for path in files:
        header, *lines = path.read_text().splitlines()
        assert header.split(",") == list(VITALS_COLUMNS)
        for line in lines:
            for c, v in zip(VITALS_COLUMNS, line.split(",")):
                columns[c].append(float(v))
    out = {}
    for c, values in columns.items():
        mean = sum(values) / len(values)
        out[c] = {"n": len(values), "mean": mean, "variance": sum((v - mean) ** 2 for v in values) / (len(values) - 1)}
    return out


def private_rows(folder: Path, pima_csv: Path, rows: slice) -> Path:
    lines = pima_csv.read_text().splitlines()
    (folder / "clinic.csv").write_text("\n".join([lines[0], *lines[1:][rows]]) + "\n")
    return folder
