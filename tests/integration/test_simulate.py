"""`docker compose run --rm ds simulate` on the test stack: both offline simulations, their
numbers, and nothing left running; bad input fails clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tests.integration.helpers import (DATASET, DATASITES, FEATURES, as_party, ds_finish, ds_start, exec_in,
                                       finish_once, result_line, run_once, start_once)

MOCK_ROWS_PROBE = """
import json, sys, pandas as pd, syft_rds
out = {}
for host in sys.argv[1:]:
    s = syft_rds.init_session(host=host, syftbox_client_config_path="/home/syft/federation/config.json")
    mock = s.dataset.get(name=%r).get_mock_path()
    counts = pd.concat(pd.read_csv(p) for p in mock.glob("*.csv"))["Outcome"].value_counts()
    out[host] = {str(k): int(v) for k, v in counts.items()}
print("RESULT " + json.dumps(out))
"""

# Processes a simulation starts, as their command lines show them.
SIMULATION_PROCESSES = """
import os
marks = (b"flower-simulation", b"flwr\\0run", b"raylet", b"gcs_server", b"ray::", b"main.py\\0-s", b"syft_flwr.run")
for pid in filter(str.isdigit, os.listdir("/proc")):
    if int(pid) == os.getpid():  # this probe names them all
        continue
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        continue
    if any(m in cmd for m in marks):
        print(pid, cmd.replace(b"\\0", b" ").decode(errors="replace"))
"""


def rows_per_outcome(aggregate_file: Path) -> dict[str, int]:
    by_outcome = json.loads(aggregate_file.read_text())["features"]["Pregnancies"]["by_outcome"]
    return {o: v["count"] + v["missing"] for o, v in by_outcome.items()}


def test_simulate_runs_flower_and_syft_flwr_offline(stack, results_dir, pima_csv):
    code, output = finish_once(start_once("ds", "simulate"), timeout=900)
    assert code == 0, output[-6000:]
    result = result_line(output)
    print("".join(line + "\n" for line in output.splitlines() if line.startswith(("simulation ", "processes "))))
    # A new container beside the running ds: it reads the synced volume, no second client.
    assert "without starting a SyftBox client" in output

    for name, sim in result["simulations"].items():
        out = results_dir / "simulation" / name
        assert sim["ok"], (name, sim)
        assert (out / "aggregate.json").is_file() and (out / "simulation.log").is_file()
        assert sorted(p.name for p in (out / "figures").glob("*.png")) == sorted(f"{f}.png" for f in FEATURES)
    assert sorted(result["simulations"]) == ["flwr", "syft_flwr"]

    # Flower's simulation: every row of the public file, split over one node per owner.
    public = pd.read_csv(pima_csv)["Outcome"].value_counts()
    flwr_rows = rows_per_outcome(results_dir / "simulation/flwr/aggregate.json")
    assert flwr_rows == {"0": public[0], "1": public[1]}
    assert json.loads((results_dir / "simulation/flwr/aggregate.json").read_text())["replied"] == len(DATASITES)

    # syft_flwr: exactly the owners' mocks, as a guest reads them, far fewer rows than the private data.
    mocks = result_line(exec_in("ds", "python", "-c", MOCK_ROWS_PROBE % DATASET, *DATASITES).stdout)
    mock_rows = {o: sum(m.get(o, 0) for m in mocks.values()) for o in ("0", "1")}
    syft_aggregate = json.loads((results_dir / "simulation/syft_flwr/aggregate.json").read_text())
    assert rows_per_outcome(results_dir / "simulation/syft_flwr/aggregate.json") == mock_rows
    assert sorted(syft_aggregate["datasites"]) == sorted(DATASITES)
    assert sum(mock_rows.values()) < sum(flwr_rows.values()) / 4

    # Nothing a simulation started outlived it, and it holds no inotify instance any more.
    assert all(sim["left_over"] == [] for sim in result["simulations"].values())
    assert result["inotify_instances"]["after"] == result["inotify_instances"]["before"]
    assert "processes left over: none" in output
    # The DS's own container is untouched: its client still answers, none of ours runs there.
    assert exec_in("ds", "federation", "health").returncode == 0
    assert exec_in("ds", "python", "-c", SIMULATION_PROCESSES).stdout == ""


def test_simulate_starts_its_own_client_where_no_synced_folder_has_the_datasets(stack, tmp_path):
    # Another identity (with its own kit) on an empty home: a second client for the DS's own
    # would fight the ds's.
    env, volumes = as_party("rehearsal@openmined.org", tmp_path)
    code, output = finish_once(start_once("ds", "simulate", env=env | {
        "FEDERATION_HOME": "/tmp/rehearsal", "RESULTS_DIR": "/tmp/rehearsal-results"}, volumes=volumes), timeout=900)
    assert code == 0, output[-6000:]
    assert "not in the DS's synced folder: starting a SyftBox client" in output
    result = result_line(output)
    assert all(sim["ok"] for sim in result["simulations"].values()), result
    assert result["inotify_instances"]["after"] == result["inotify_instances"]["before"]


def test_simulate_without_the_public_file_names_the_setting(stack):
    code, output = run_once("ds", "simulate", env={"PIMA_CSV": "/data/public/nothing-here.csv"})
    assert code == 2
    assert "federation simulate: setting PIMA_CSV: no file at /data/public/nothing-here.csv" in output


def test_simulate_naming_an_owner_without_the_dataset_fails_clearly(stack):
    # In the ds container itself: it uses the client running there.
    code, output = ds_finish(ds_start("simulate", env={
        "DATASITES": "do1@openmined.org,ghost@openmined.org", "WAIT_TIMEOUT": "5",
        "RESULTS_DIR": "/tmp/simulate-ghost-results"}))
    assert code == 1, output[-3000:]
    assert "using the SyftBox client running in this container" in output
    assert "data owner ghost@openmined.org never appeared" in output
    assert exec_in("ds", "python", "-c", SIMULATION_PROCESSES).stdout == ""
