"""The DS's notebook (ds/ds.ipynb), run headless in the notebook container against the stack.

The checks are on what the notebook showed, not only that it ran: a guest on every owner,
the private path refused, a rehearsal, and an aggregate that covers exactly the owners the
notebook asks, with the numbers and figures it displayed. Then the same notebook once more,
unchanged, on a study of the DS's own (examples/moments on do1's and do2's `vitals`).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.helpers import (DATASITES, FEATURES, OWNERS, VITALS, assert_aggregate_matches, compose,
                                       copy_app, expected_moments)

EXECUTED = "/tmp/ds-executed"  # jupyter execute adds .ipynb
RUN_TIMEOUT = 1200  # s: the whole notebook, simulations included, on a busy 2-core machine
TOKEN = secrets.token_hex(16)

# What the browser does: start a kernel through Jupyter's API and run a cell over its websocket
# (`jupyter execute` talks to a kernel directly; this goes through the server). Runs in the
# notebook container, with the Jupyter venv's websocket-client.
BROWSER_LIKE_CELL = """
import json, os, sys, urllib.request, uuid
import websocket
token = os.environ["JUPYTER_TOKEN"]
def api(path, method, data=None):
    request = urllib.request.Request(f"http://127.0.0.1:8888{path}?token={token}", data=data, method=method)
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read() or b"null")
kernel = api("/api/kernels", "POST", b"{}")
ws = websocket.create_connection(f"ws://127.0.0.1:8888/api/kernels/{kernel['id']}/channels?token={token}", timeout=60)
msg_id = uuid.uuid4().hex
ws.send(json.dumps({"channel": "shell", "parent_header": {}, "metadata": {}, "header": {
    "msg_id": msg_id, "msg_type": "execute_request", "session": uuid.uuid4().hex, "username": "", "version": "5.3"},
    "content": {"code": sys.argv[1], "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False}}))
while True:  # the kernel's status and input messages come first
    msg = json.loads(ws.recv())
    if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] in ("execute_result", "error"):
        break
api(f"/api/kernels/{kernel['id']}", "DELETE")
print(json.dumps(msg["content"]))
"""


@pytest.fixture(scope="module")
def notebook_container(stack) -> str:
    """The notebook service (compose profile notebook), started once the demo run is over.
    --no-deps: the ds container it attaches to runs already and must not be recreated."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("NOTEBOOK_TOKEN", TOKEN)
        compose("--profile", "notebook", "up", "-d", "--no-deps", "--build", "--wait", "--wait-timeout", "300",
                "notebook", timeout=900)
    container = compose("--profile", "notebook", "ps", "-q", "notebook").stdout.strip()
    assert container, "the notebook service has no running container"
    yield container
    compose("--profile", "notebook", "rm", "--stop", "--force", "notebook", check=False)


def execute(notebook_container: str, dest: Path, env: dict[str, str] | None = None) -> dict:
    """ds.ipynb after `jupyter execute` in the notebook container (with `env` on top of its
    own), as parsed JSON. `docker exec`, not `docker compose exec`: only the former passes the
    exit code on."""
    started = time.monotonic()
    env_args = [a for k, v in (env or {}).items() for a in ("-e", f"{k}={v}")]
    run = subprocess.run(["docker", "exec", *env_args, notebook_container, "jupyter", "execute",
                          f"--output={EXECUTED}", "/app/ds/ds.ipynb"], capture_output=True, text=True,
                         timeout=RUN_TIMEOUT)
    if run.returncode != 0:  # what the notebook said, and what the owners did meanwhile
        owners = compose("logs", "--no-color", "--tail", "30", *OWNERS, check=False).stdout
        pytest.fail(f"the notebook failed:\n{run.stderr[-6000:]}\n--- owners' logs:\n{owners}", pytrace=False)
    print(f"notebook executed in {time.monotonic() - started:.0f} s")
    subprocess.run(["docker", "cp", f"{notebook_container}:{EXECUTED}.ipynb", str(dest)], check=True)
    return json.loads(dest.read_text())


@pytest.fixture(scope="module")
def executed(notebook_container: str, tmp_path_factory) -> dict:
    """The notebook as shipped: the bundled app on the Pima data of every owner."""
    return execute(notebook_container, tmp_path_factory.mktemp("notebook") / "ds-executed.ipynb")


@pytest.fixture(scope="module")
def asked(notebook_container: str) -> list[str]:
    """The owners the notebook asks, in order: DATASITES in its container's environment."""
    out = subprocess.run(["docker", "exec", notebook_container, "printenv", "DATASITES"],
                         capture_output=True, text=True, check=True).stdout
    return [e.strip() for e in out.split(",") if e.strip()]


def outputs(notebook: dict, tag: str) -> list[dict]:
    cells = [c for c in notebook["cells"] if tag in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged {tag!r}, found {len(cells)}"
    return cells[0]["outputs"]


def printed(notebook: dict, tag: str) -> str:
    return "".join("".join(o["text"]) for o in outputs(notebook, tag) if o["output_type"] == "stream")


def shown(notebook: dict, tag: str, mime: str) -> list[str]:
    """Every `mime` representation the cell displayed, as one string each."""
    data = [o["data"][mime] for o in outputs(notebook, tag) if mime in o.get("data", {})]
    return ["".join(d) if isinstance(d, list) else d for d in data]


def test_jupyter_asks_for_the_token(notebook_container):
    """Jupyter answers on the port ds publishes, and only with the token."""
    api = f"http://127.0.0.1:{os.environ['NOTEBOOK_PORT']}/api/sessions"
    with urllib.request.urlopen(f"{api}?token={TOKEN}", timeout=10) as answer:
        assert answer.status == 200
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(api, timeout=10)
    assert refused.value.code == 403


def test_jupyter_runs_cells_in_the_app_environment(notebook_container):
    code = "from federation.scientist import ScientistSettings\nScientistSettings.from_env().party.email"
    run = subprocess.run(["docker", "exec", "-i", notebook_container, "/opt/jupyter/bin/python", "-", code],
                         input=BROWSER_LIKE_CELL, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout)["data"]["text/plain"] == "'ds@openmined.org'"


def test_every_cell_ran_without_error(executed):
    code = [c for c in executed["cells"] if c["cell_type"] == "code"]
    assert code and all(c["execution_count"] for c in code)
    errors = [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, "\n".join(f"{e['ename']}: {e['evalue']}" for e in errors)


def test_guest_on_every_owner(executed, asked):
    text = printed(executed, "step-1-login")
    for email in asked:
        assert f"{email}: logged in, is_admin = False" in text
    assert "is_admin = True" not in text


def test_mock_shown_and_private_path_refused(executed, asked):
    text = printed(executed, "step-2-explore")
    for email in asked:
        assert f"{email}: get_private_path() refused: PermissionError" in text
    heads = shown(executed, "step-2-explore", "text/plain")
    assert len(heads) == len(asked) and all("Outcome" in h for h in heads)


def test_bootstrapped_for_the_ds_and_its_owners(executed, asked):
    text = printed(executed, "step-4-bootstrap")
    assert "aggregator = ds@openmined.org" in text
    assert f"datasites = {asked}" in text


def test_rehearsal_wrote_both_simulations(executed, results_dir: Path):
    for engine in ("flwr", "syft_flwr"):
        aggregate = json.loads((results_dir / "notebook" / "simulation" / engine / "aggregate.json").read_text())
        assert aggregate["replied"] == aggregate["expected"], engine


def test_aggregate_covers_the_owners_asked(executed, asked, results_dir: Path, private_csvs):
    aggregate = json.loads((results_dir / "notebook" / "aggregate.json").read_text())
    assert sorted(aggregate["datasites"]) == sorted(asked)
    assert f"datasites that replied: {', '.join(aggregate['datasites'])}" in printed(executed, "step-8-aggregate")
    by_email = {email: service for service, email in OWNERS.items()}
    assert_aggregate_matches(aggregate, [f for email in asked for f in private_csvs[by_email[email]]])


def test_displayed_counts_are_the_aggregate(executed, results_dir: Path):
    aggregate = json.loads((results_dir / "notebook" / "aggregate.json").read_text())
    (table,) = shown(executed, "step-8-aggregate", "text/plain")
    # Data rows: the feature, then count (outcome 0, 1), mean (0, 1), missing (0, 1).
    rows = {cells[0]: cells[1:] for cells in map(str.split, table.splitlines()) if cells and cells[0] in FEATURES}
    assert sorted(rows) == sorted(FEATURES)
    for feature, cells in rows.items():
        by_outcome = aggregate["features"][feature]["by_outcome"]
        assert [int(cells[0]), int(cells[1])] == [by_outcome["0"]["count"], by_outcome["1"]["count"]], feature
        assert [int(cells[4]), int(cells[5])] == [by_outcome["0"]["missing"], by_outcome["1"]["missing"]], feature


def test_figures_displayed(executed):
    figures = shown(executed, "step-8-figures", "image/png")
    assert len(figures) == len(FEATURES)
    assert all(base64.b64decode(f).startswith(b"\x89PNG") for f in figures)


def test_the_same_notebook_runs_a_study_of_the_ds_own_on_another_dataset(notebook_container, vitals_private,
                                                                        tmp_path):
    """examples/moments (two rounds, no aggregate.json) on `vitals`, by settings alone: the
    notebook rehearses it, runs it and shows the files its server wrote, with the real figures."""
    two = DATASITES[:2]
    results = "/tmp/notebook-moments"
    # its first cell waits for the ds container's own run, in RESULTS_DIR/run.json: over long ago
    subprocess.run(["docker", "exec", notebook_container, "sh", "-c", f"rm -rf {results} && mkdir {results} && "
                    f"cp /home/syft/results/run.json {results}/"], check=True)
    notebook = execute(notebook_container, tmp_path / "moments.ipynb", env={
        "FED_APP_DIR": copy_app("notebook", "moments"), "DATASET_NAME": VITALS, "DATASITES": ",".join(two),
        "RESULTS_DIR": results})
    errors = [o for c in notebook["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, "\n".join(f"{e['ename']}: {e['evalue']}" for e in errors)
    explored = printed(notebook, "step-2-explore")
    assert all(f"{email}: mock of {VITALS}: " in explored and "columns age, bmi, glucose, y" in explored
               for email in two), explored
    rehearsal = printed(notebook, "step-5-simulate")
    for engine in ("flwr", "syft_flwr"):  # both rehearsed the DS's app (it writes no aggregate.json)
        assert any(line.split()[:3] == ["simulation", engine, "ok"] for line in rehearsal.splitlines()), rehearsal
    shown_results = printed(notebook, "step-8-aggregate")
    assert f"datasites that replied: {', '.join(sorted(two))}" in shown_results
    assert "no reply from: nobody" in shown_results
    assert "moments.json" in shown_results and "server-files/moments.png" in shown_results
    # the moments it printed are the private files' (the notebook read them from the server's output)
    listed = shown_results[shown_results.index("moments.json"):]
    got = json.loads(listed[listed.index("{"):listed.index("\n}\n") + 2])["columns"]
    want = expected_moments(vitals_private["do1"] + vitals_private["do2"])
    assert sorted(got) == sorted(want)
    for column, w in want.items():
        assert got[column]["n"] == w["n"] and abs(got[column]["mean"] - w["mean"]) < 1e-9 * abs(w["mean"]), column
    assert "not the bundled app" in printed(notebook, "step-8-mock")
