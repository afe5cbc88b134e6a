"""`federation simulate` without Docker: where it gets the owners' mocks, its input checks,
stopping what a simulation leaves running, the summary, and a real `flwr run` on the host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from federation.common.settings import ScientistSettings, SettingsError
from federation.scientist import simulate
from federation.scientist.simulate import Simulation, choose_sync
from tests.conftest import REPO_ROOT

# =========================================================================== the SyftBox client


class FakeSync:
    def __init__(self, running_here: bool):
        self._running_here = running_here

    def running_here(self) -> bool:
        return self._running_here


def test_a_client_running_in_this_container_is_used():
    def never_asked():
        raise AssertionError("the synced folder need not be looked at")

    assert choose_sync(FakeSync(running_here=True), never_asked) == "attach"


def test_a_volume_holding_every_dataset_is_read_without_a_client():
    started = time.monotonic()
    assert choose_sync(FakeSync(running_here=False), lambda: True, grace=20) == "volume"
    assert time.monotonic() - started < 1


def test_the_ds_container_gets_a_short_while_to_sync_the_datasets():
    answers = iter([False, False, True])
    assert choose_sync(FakeSync(running_here=False), lambda: next(answers), grace=20) == "volume"


def test_own_client_only_once_the_grace_is_over():
    started = time.monotonic()
    assert choose_sync(FakeSync(running_here=False), lambda: False, grace=1) == "own-client"
    assert time.monotonic() - started >= 1


# =========================================================================== input


def ds_env(monkeypatch, tmp_path, **extra):
    for key, value in {"SYFTBOX_EMAIL": "ds@openmined.org", "DATASITES": "do1@openmined.org,do2@openmined.org",
                       "FEDERATION_HOME": str(tmp_path)}.items():
        monkeypatch.setenv(key, value)
    for key, value in extra.items():
        monkeypatch.setenv(key, value)
    return ScientistSettings.from_env()


def test_public_csv_unset_names_the_setting(monkeypatch, tmp_path):
    monkeypatch.delenv("PIMA_CSV", raising=False)
    with pytest.raises(SettingsError, match="setting PIMA_CSV is required"):
        simulate.public_csv(ds_env(monkeypatch, tmp_path))


@pytest.mark.parametrize("make", [lambda p: None, lambda p: p.mkdir()], ids=["missing", "a-folder"])
def test_public_csv_must_be_a_file(monkeypatch, tmp_path, make):
    path = tmp_path / "pima.csv"
    make(path)
    with pytest.raises(SettingsError, match=f"setting PIMA_CSV: no file at {path}"):
        simulate.public_csv(ds_env(monkeypatch, tmp_path, PIMA_CSV=str(path)))


def test_public_csv(monkeypatch, pima_csv, tmp_path):
    assert simulate.public_csv(ds_env(monkeypatch, tmp_path, PIMA_CSV=f" {pima_csv} ")) == pima_csv


def test_the_command_without_the_public_file_exits_2_naming_the_setting(tmp_path):
    env = os.environ | {"SYFTBOX_EMAIL": "ds@openmined.org", "DATASITES": "do1@openmined.org,do2@openmined.org",
                        "FEDERATION_HOME": str(tmp_path), "RESULTS_DIR": str(tmp_path / "results"),
                        "PIMA_CSV": str(tmp_path / "nowhere.csv"), "PYTHONPATH": str(REPO_ROOT),
                        "FED_APP_DIR": str(REPO_ROOT / "fed_app")}  # the bundled app reads the public file
    result = subprocess.run([sys.executable, "-m", "federation.cli", "simulate"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"federation simulate: setting PIMA_CSV: no file at {tmp_path / 'nowhere.csv'}" in result.stderr


# =========================================================================== child processes

def fake_aggregate(rows: dict[str, int], replied: int, expected: int) -> dict:
    by_outcome = {o: {"count": n - 1, "missing": 1, "hist": [], "mean": 0.0} for o, n in rows.items()}
    return {"replied": replied, "expected": expected, "features": {"Glucose": {"by_outcome": by_outcome}}}


def write_aggregate_cmd(aggregate: dict | None, exit_code: int = 0) -> list[str]:
    """A stand-in for a simulation: writes `aggregate` into RESULTS_DIR, exits with `exit_code`."""
    write = (f"import json, os, pathlib; pathlib.Path(os.environ['RESULTS_DIR'], 'aggregate.json')"
             f".write_text(json.dumps({aggregate!r}))") if aggregate else "pass"
    return [sys.executable, "-c", f"{write}\nprint('done'); raise SystemExit({exit_code})"]


@pytest.mark.parametrize("aggregate, exit_code, error", [
    (fake_aggregate({"0": 30, "1": 10}, 2, 2), 0, ""),
    (None, 0, "no aggregate.json written"),  # what `flwr run` does when the simulation failed
    (fake_aggregate({"0": 30, "1": 10}, 1, 2), 0, "1 of 2 nodes replied"),
    (fake_aggregate({"0": 30, "1": 10}, 2, 2), 1, "exit code 1"),
], ids=["ok", "no-aggregate", "a-node-missing", "exit-code"])
def test_a_simulation_counts_only_with_every_node_in_its_aggregate(tmp_path, aggregate, exit_code, error):
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "stale.png").write_text("from an earlier run")
    sim = simulate.simulate(Simulation("fake", out), write_aggregate_cmd(aggregate, exit_code), dict(os.environ),
                            tmp_path, nodes=2, timeout=60)
    assert sim.error == error and sim.ok is (not error)
    assert sim.rows == ({"0": 30, "1": 10} if aggregate else {})
    assert sim.log_file.read_text() == "done\n"
    assert not (out / "figures").exists()  # never an earlier run's output beside this one's


# =========================================================================== summary


def test_rows_by_outcome_count_missing_values_too():
    assert simulate.rows_by_outcome(fake_aggregate({"1": 12, "0": 28}, 2, 2)) == {"0": 28, "1": 12}


def test_summary_lines():
    ok = Simulation("flwr", Path("/results/simulation/flwr"), ok=True, seconds=18.04, rows={"0": 500, "1": 268})
    failed = Simulation("syft_flwr", Path("/results/simulation/syft_flwr"), seconds=3.0, error="exit code 1")
    assert simulate.summary_line(ok) == ("simulation flwr      ok  18.0 s  outcome 0: 500 rows, outcome 1: 268 rows"
                                         "  -> /results/simulation/flwr")
    assert simulate.summary_line(failed) == ("simulation syft_flwr failed (exit code 1)  3.0 s  no rows"
                                             "  -> /results/simulation/syft_flwr")


# =========================================================================== the real thing


def processes_with_env(entry: str) -> list[int]:
    """Our processes whose environment holds `entry` (every process of a run inherits it)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if entry.encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                found.append(int(pid))
        except OSError:
            continue
    return found


def test_flwr_simulation_on_the_public_file_counts_every_row(tmp_path, pima_csv):
    """`flwr run` (Ray backend) of the app on two shares of the public file, from the host venv."""
    out = tmp_path / "out"
    sim = simulate.run_flwr(REPO_ROOT / "fed_app", pima_csv, 2, out, tmp_path / "work",
                            round_timeout=120, timeout=300)
    assert sim.ok, sim.log_file.read_text()[-3000:]
    expected = pd.read_csv(pima_csv)["Outcome"].value_counts()
    assert sim.rows == {"0": expected[0], "1": expected[1]}
    aggregate = json.loads((out / "aggregate.json").read_text())
    assert aggregate["replied"] == aggregate["expected"] == 2
    assert len(list((out / "figures").glob("*.png"))) == 8
    # Nothing of the run is left: not in its session, nor anywhere else (raylets, workers).
    assert sim.left_over == []
    assert processes_with_env(f"RESULTS_DIR={out}") == []
