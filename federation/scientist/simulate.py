"""`federation simulate`: the DS's two offline rehearsals of its app (FED_APP), before it submits.

1. `flwr run`: Flower's own simulation (Ray backend) of a copy of the app, one node per
   owner in DATASITES: the bundled app each on its share of the public Pima file (PIMA_CSV),
   another app on the first owner's mock (DATA_DIR), as it says.
2. `syft_flwr.run`: the bootstrapped app on every owner's mock, fetched as a guest.

Outputs go to RESULTS_DIR/simulation/flwr/ and .../syft_flwr/ (simulation.log,
aggregate.json, figures/). The two run side by side, each in a child process that leads a
session of its own; everything still in that session afterwards is stopped: Ray may leave its
daemons behind, syft_flwr.run its RDS servers (holding inotify instances) and the owners'
processes when a round goes wrong.

It is longer than 300 lines because the two rehearsals share their preparation (the app's
copy, the owners' mocks, the client rule) and their process-session handling; split apart,
each half would need the other's.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from federation.common.processes import run_in_own_session
from federation.common.settings import (ScientistSettings, SettingsError, child_environment)
from federation.common.syftbox import SyncClient, point_libraries_at, wait_for
from federation.scientist.session import (OwnerSession, explore, for_each, guest_session, import_libraries, login,
                                         mock_dirs, synced_mock)
from federation.scientist.steps import bootstrap_copy

log = logging.getLogger(__name__)

SIMULATION_TIMEOUT = 600.0  # s per simulation; on a busy 2-core machine one takes under a minute
SYNC_GRACE = 20.0  # s to give the ds container's client to sync the owners' datasets

# `flwr run --federation-config` may only override keys pyproject.toml already has, so the
# copy of the app gets a federation of its own.
FLWR_FEDERATION = """
[tool.flwr.federations.simulate]
options.num-supernodes = {nodes}
# One CPU per ClientApp (Flower's default is two): an actor per core, and one on a single core.
options.backend.client-resources.num-cpus = 1
options.backend.init-args.include-dashboard = false
# The messages are a few kB. Ray would reserve 30 % of RAM, in /tmp where /dev/shm is small
# (Docker's 64 MB); 100 MB is just above Ray's minimum.
options.backend.init-args.object-store-memory = 104857600
"""

# In a child of its own: syft_flwr.run leaves its RDS servers running and, under the temp
# folder, deletes <project name>/ and .syftbox/ (the child gets a private TMPDIR).
SYFT_FLWR_RUN = "import sys, syft_flwr; sys.exit(0 if syft_flwr.run(sys.argv[1], sys.argv[2:]) is True else 1)"


@dataclass
class Simulation:
    name: str
    out_dir: Path
    ok: bool = False
    seconds: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)  # per outcome, as the aggregate counts them
    error: str = ""
    left_over: list[int] = field(default_factory=list)  # pids that would not stop

    @property
    def log_file(self) -> Path:
        return self.out_dir / "simulation.log"


def public_csv(settings: ScientistSettings) -> Path:
    """The local copy of the public Pima file the Flower simulation partitions (never downloaded)."""
    path = settings.pima_csv
    if path is None:
        raise SettingsError("setting PIMA_CSV is required but not set: the path of a local copy of "
                            "pima-indians-diabetes.csv (compose mounts PIMA_DATA_DIR at /data/public)")
    if not path.is_file():
        raise SettingsError(f"setting PIMA_CSV: no file at {path} (compose mounts PIMA_DATA_DIR at /data/public)")
    return path


# ------------------------------------------------------------------ the owners' mocks


def choose_sync(sync: SyncClient, owners_synced: Callable[[], bool], grace: float = SYNC_GRACE) -> str:
    """How this command reaches the owners' datasets: "attach", "volume" or "own-client".

    `docker compose run --rm ds simulate` is a new container on the DS's volume, beside the
    ds container. Only one SyftBox client may run for the DS's identity: a second one in
    another container, while the ds container's runs, fights it over the same datasite.
    So: use a client answering in this container (attach); else, when the volume holds
    every owner's dataset (the ds container synced it), read it there with no client
    (volume), giving that container `grace` seconds to sync first; only then start our own.
    """
    if sync.running_here():
        log.info("using the SyftBox client running in this container")
        return "attach"
    try:
        wait_for(owners_synced, grace, "the owners' datasets in the DS's synced folder", 0.5)
    except TimeoutError:
        log.info("the owners' datasets are not in the DS's synced folder: starting a SyftBox client")
        return "own-client"
    log.info("reading the owners' datasets from the DS's synced folder, without starting a SyftBox client")
    return "volume"


def owners_synced(settings: ScientistSettings) -> bool:
    """Every owner's dataset and mock are in the DS's synced folder."""
    try:
        return all(synced_mock(guest_session(settings, email), settings.dataset) for email in settings.datasites)
    except Exception:  # no config, store or dataset yet: all mean "not synced"
        return False


def fetch_mocks(settings: ScientistSettings, dest: Path) -> list[Path]:
    """Each owner's mock, read as a guest (the private path refused), copied to dest/<owner>/."""
    sync = SyncClient(settings.party)
    try:
        if choose_sync(sync, lambda: owners_synced(settings)) == "own-client":
            sync.start()
            sync.ensure_keys()
        owners = [OwnerSession(e) for e in settings.datasites]
        import_libraries()  # before the logins' threads
        for_each(owners, login, sync, settings)  # names any owner without the dataset
        for_each(owners, explore, settings)
        copies = []
        for owner, mock in zip(owners, mock_dirs(settings, owners)):
            copies.append(dest / owner.email)
            shutil.copytree(mock, copies[-1])
        return copies
    finally:
        sync.stop()  # a no-op unless we started it: the mocks are copied, no client is needed


# ------------------------------------------------------------------ child processes


# s (as Ray's ms): how long Ray's raylet waits for its runtime-env agent, a Python process of
# its own, to listen. Ray's 30 s were too short beside a running stack on 2 cores: the agent
# had not started, the raylet exited, and Flower's simulation failed ("Failed to register
# worker to Raylet"), in CI and here.
RAY_AGENT_WAIT_MS = "180000"


def child_env(**extra: str) -> dict[str, str]:
    """Our environment for a simulation: nothing pointing at the DS's real datasite or data,
    no telemetry (nothing leaves this machine)."""
    bin_dir = str(Path(sys.executable).parent)  # flwr calls flower-simulation through PATH
    return child_environment(drop=("SYFTBOX_CLIENT_CONFIG_PATH", "DATA_DIR", "DATASITES"), path_first=bin_dir,
                             FLWR_TELEMETRY_ENABLED="0", RAY_USAGE_STATS_ENABLED="0",
                             RAY_agent_register_timeout_ms=RAY_AGENT_WAIT_MS, **extra)


def rows_by_outcome(aggregate: dict) -> dict[str, int]:
    """Rows per outcome: any feature's count plus its missing values."""
    feature = next(iter(aggregate["features"].values()))
    return {outcome: v["count"] + v["missing"] for outcome, v in sorted(feature["by_outcome"].items())}


FLOWER_FAILED = re.compile(r"^(ERROR|Traceback)|ServerApp thread raised an exception|Exception in ServerApp|"
                           r"Server encountered an error", re.M)
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Flower colours its level names


def is_bundled(fed_app: Path) -> bool:
    """The app this project ships (or a copy of it): it reads PIMA_CSV in Flower's simulation
    and writes aggregate.json."""
    import tomllib

    try:
        return tomllib.loads((fed_app / "pyproject.toml").read_text()).get("project", {}).get("name") == "fed_app"
    except (OSError, tomllib.TOMLDecodeError):
        return False


def simulate(sim: Simulation, cmd: list[str], env: dict[str, str], cwd: Path, nodes: int,
             timeout: float, bundled: bool = True) -> Simulation:
    """Run one simulation into a fresh `sim.out_dir`. The bundled app's counts when its
    aggregate.json says every node replied; another app's when it exited 0 and its log shows no
    error (`flwr run` exits 0 even when the simulation failed)."""
    shutil.rmtree(sim.out_dir, ignore_errors=True)
    sim.out_dir.mkdir(parents=True)
    started = time.monotonic()
    code, left = run_in_own_session(
        cmd, env=env | {"RESULTS_DIR": str(sim.out_dir.resolve()), "MIN_REPLIES": str(nodes)},
        cwd=cwd, stdout=sim.log_file, timeout=timeout)
    sim.seconds = round(time.monotonic() - started, 1)
    sim.left_over = sorted(left)
    aggregate_file = sim.out_dir / "aggregate.json"
    if code is None:
        sim.error = f"timed out after {timeout:.0f} s"
    elif code != 0:
        sim.error = f"exit code {code}"
    elif left:
        sim.error = f"processes {sim.left_over} would not stop"
    if aggregate_file.exists():
        aggregate = json.loads(aggregate_file.read_text())
        sim.rows = rows_by_outcome(aggregate)
        if aggregate["replied"] != nodes:
            sim.error = sim.error or f"{aggregate['replied']} of {nodes} nodes replied"
    elif bundled:  # `flwr run` exits 0 even when the simulation failed: the aggregate is what counts
        sim.error = sim.error or "no aggregate.json written"
    elif (failed := FLOWER_FAILED.search(ANSI.sub("", sim.log_file.read_text(errors="replace")))):
        sim.error = sim.error or f"the log shows an error: {failed.group(0)!r}"
    sim.ok = not sim.error
    if not sim.ok:
        tail = sim.log_file.read_text(errors="replace").splitlines()[-10:]
        log.error("simulation %s failed: %s; last lines of %s:\n%s", sim.name, sim.error, sim.log_file,
                  "\n".join(tail))
    return sim


def run_flwr(fed_app: Path, data: Path, nodes: int, out_dir: Path, work: Path, round_timeout: float,
             timeout: float = SIMULATION_TIMEOUT, bundled: bool = True) -> Simulation:
    """Flower's simulation of a copy of the app: the bundled app on `nodes` partitions of the
    public file `data`; another app with every node reading the mock folder `data` (DATA_DIR:
    Flower's simulation gives all its nodes one environment)."""
    app = work / "flwr" / "fed_app"
    shutil.copytree(fed_app, app, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "results", ".*"))
    with open(app / "pyproject.toml", "a") as f:
        f.write(FLWR_FEDERATION.format(nodes=nodes))
    cmd = [str(Path(sys.executable).with_name("flwr")), "run", str(app), "simulate",
           "--run-config", f"min-nodes={nodes}"]
    data_env = {"PIMA_CSV": str(data.resolve())} if bundled else {"DATA_DIR": str(data.resolve())}
    env = child_env(SYFT_FLWR_MSG_TIMEOUT=str(round_timeout), **data_env)
    return simulate(Simulation("flwr", out_dir), cmd, env, app.parent, nodes, timeout, bundled)


def run_syft_flwr(settings: ScientistSettings, mocks: list[Path], out_dir: Path, work: Path,
                  timeout: float = SIMULATION_TIMEOUT) -> Simulation:
    """syft_flwr.run of the bootstrapped app on the owners' mocks, every party on this machine."""
    app = bootstrap_copy(settings.fed_app, work / "syft_flwr", settings.party.email, settings.datasites)
    tmp = work / "syft_flwr" / "tmp"
    tmp.mkdir()
    env = child_env(TMPDIR=str(tmp), DATASITES=",".join(settings.datasites), DATASET_NAME=settings.dataset,
                    SYFT_FLWR_MSG_TIMEOUT=str(settings.round_timeout))
    sim = simulate(Simulation("syft_flwr", out_dir), [sys.executable, "-c", SYFT_FLWR_RUN, str(app), *map(str, mocks)],
                   env, app.parent, len(mocks), timeout, bundled=is_bundled(settings.fed_app))
    if (app / "simulation_logs").is_dir():  # each party's own log
        shutil.copytree(app / "simulation_logs", out_dir / "logs")
    return sim


# ------------------------------------------------------------------ the command


def inotify_instances() -> int:
    """inotify instances held by the processes we can see (here: this container)."""
    count = 0
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
            count += sum(os.readlink(f"/proc/{entry}/fd/{fd}") == "anon_inode:inotify" for fd in fds)
        except OSError:  # gone, or not ours
            continue
    return count


def summary_line(sim: Simulation) -> str:
    rows = ", ".join(f"outcome {o}: {n} rows" for o, n in sim.rows.items()) or "no rows"
    status = "ok" if sim.ok else f"failed ({sim.error})"
    return f"simulation {sim.name:<9} {status}  {sim.seconds:.1f} s  {rows}  -> {sim.out_dir}"


def main() -> int:
    settings = ScientistSettings.from_env()
    bundled = is_bundled(settings.fed_app)
    csv = public_csv(settings) if bundled else None
    point_libraries_at(settings.party)
    out = settings.results_dir / "simulation"
    work = Path(tempfile.mkdtemp(prefix="simulate-"))
    try:
        mocks = fetch_mocks(settings, work / "mocks")
        if not bundled:
            print(f"simulation flwr: {settings.fed_app} is not the bundled app, so it gets no share of the "
                  f"public Pima file: each of its {len(mocks)} nodes reads the mock of {settings.datasites[0]} "
                  "(DATA_DIR; Flower's simulation gives all its nodes one environment)")
        inotify_before = inotify_instances()
        # Side by side: each spends most of its time starting processes and waiting on them
        # (Ray's, syft_flwr's parties), so together they take little more than the slower one.
        with ThreadPoolExecutor(max_workers=2) as pool:
            sims = [f.result() for f in (
                pool.submit(run_flwr, settings.fed_app, csv or mocks[0], len(settings.datasites), out / "flwr",
                            work, settings.round_timeout, bundled=bundled),
                pool.submit(run_syft_flwr, settings, mocks, out / "syft_flwr", work))]
        inotify_after = inotify_instances()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for sim in sims:
        print(summary_line(sim))
    left = [pid for s in sims for pid in s.left_over]
    print(f"processes left over: {', '.join(map(str, left)) or 'none'}; "
          f"inotify instances here: {inotify_before} before, {inotify_after} after")
    print("RESULT " + json.dumps({"simulations": {s.name: {"ok": s.ok, "seconds": s.seconds, "rows": s.rows,
                                                            "out_dir": str(s.out_dir), "error": s.error,
                                                            "left_over": s.left_over} for s in sims},
                                  "inotify_instances": {"before": inotify_before, "after": inotify_after}}))
    failed = [s.name for s in sims if not s.ok]
    if failed:
        print(f"federation simulate: {' and '.join(failed)} simulation failed; see simulation.log in "
              f"{', '.join(str(s.out_dir) for s in sims if not s.ok)}", file=sys.stderr)
        return 1
    return 0
