"""The Flower server's outcome, read from its exit code and log."""

from __future__ import annotations

import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest

from federation.common.settings import ScientistSettings
from federation.scientist.errors import WorkflowError
from federation.scientist.flower_server import ServerProcess, run_server
from federation.scientist.logged_server import WAITING
from tests.conftest import REPO_ROOT
from tests.unit.fakes import scientist_settings

# ---------------------------------------------------------------- the Flower server's outcome


def fake_server(tmp_path: Path, main_py: str) -> tuple[ScientistSettings, Path]:
    app = tmp_path / "run" / "fed_app"
    app.mkdir(parents=True)
    (app / "pyproject.toml").write_text("[tool.flwr.app.config]\nnum-server-rounds = 1\n")
    (app / "main.py").write_text(main_py)
    return scientist_settings(tmp_path), app


def test_a_server_error_that_syft_flwr_swallows_still_fails_the_run_with_its_message(tmp_path):
    s, app = fake_server(tmp_path, "print('ERROR | Server encountered an error: round 1: only 1 of 3 datasite(s) "
                                   "replied, at least 2 needed (MIN_REPLIES)')\n")
    rounds = []
    with pytest.raises(WorkflowError, match=r"^the Flower server failed: round 1: only 1 of 3 .*MIN_REPLIES\)$"):
        run_server(s, app, app.parent, lambda done, total: rounds.append((done, total)))
    assert rounds and rounds[-1] == (0, 1)


def test_a_server_that_exits_non_zero_fails_the_run_with_its_last_lines(tmp_path):
    s, app = fake_server(tmp_path, "import sys\nprint('fed_app server: round 1: wrote x')\nsys.exit(3)\n")
    rounds = []
    with pytest.raises(WorkflowError, match=r"Flower server exited with 3:\n(.*\n)*fed_app server: round 1: wrote x$"):
        run_server(s, app, app.parent, lambda done, total: rounds.append((done, total)))
    assert rounds[-1] == (0, 1)  # rounds come from the messages it sent: none


def test_what_the_server_app_writes_joins_the_results_with_its_log_however_it_ended(tmp_path):
    s, app = fake_server(tmp_path, "import os, pathlib, sys\n"
                                   "pathlib.Path('figure.png').write_bytes(b'png')\n"
                                   "pathlib.Path('tables').mkdir()\n"
                                   "pathlib.Path('tables/means.csv').write_text('a,1\\n')\n"
                                   "pathlib.Path(os.environ['RESULTS_DIR'], 'direct.json').write_text('{}')\n"
                                   "print('the server log')\nsys.exit(1)\n")
    with pytest.raises(WorkflowError):
        run_server(s, app, app.parent)
    assert (s.results_dir / "server-files" / "figure.png").read_bytes() == b"png"
    assert (s.results_dir / "server-files" / "tables" / "means.csv").read_text() == "a,1\n"
    assert (s.results_dir / "direct.json").is_file()
    assert "the server log" in (s.results_dir / "server.log").read_text()


def test_the_rounds_come_from_the_message_log_and_the_app_may_not_say_how_many(tmp_path):
    s, app = fake_server(tmp_path, "import json, sys\n"
                                   "with open(sys.argv[0].replace('main.py', '../messages.jsonl'), 'a') as f:\n"
                                   "    for e in ({'event': 'sent', 'round': 1, 'id': 'a', 'datasite': 'do1@x.org'},\n"
                                   "              {'event': 'reply', 'round': 1, 'id': 'a', 'datasite': 'do1@x.org'}):\n"
                                   "        f.write(json.dumps(e) + '\\n')\n")
    (app / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    rounds = []
    got = run_server(s, app, app.parent, lambda done, total: rounds.append((done, total)))
    assert [r.to_json() for r in got] == [{"round": 1, "asked": ["do1@x.org"], "replied": ["do1@x.org"],
                                           "errors": {}, "silent": []}]
    assert rounds[-1] == (1, None)


# ---------------------------------------------------------------- started ahead of its round


def test_a_server_started_ahead_runs_its_server_app_only_once_told_to(tmp_path):
    s, app = fake_server(tmp_path, "import pathlib\npathlib.Path('ran').write_text('yes')\nprint('ran')\n")
    server = ServerProcess(s, app, app.parent)
    try:
        deadline = time.monotonic() + 60  # it imports the server's packages, then says it waits
        while WAITING not in server.server_log.read_text():
            assert server.proc.poll() is None and time.monotonic() < deadline, server.server_log.read_text()
            time.sleep(0.1)
        assert not (app.parent / "server-work" / "ran").exists()
        server.go()
        assert server.wait() == []
    finally:
        server.stop()
    assert (s.results_dir / "server-files" / "ran").read_text() == "yes"
    assert "ran" in (s.results_dir / "server.log").read_text()


def test_a_server_started_before_its_app_exists_runs_the_app_go_names(tmp_path):
    s, app = fake_server(tmp_path, "import pathlib, sys\npathlib.Path('ran').write_text(sys.argv[0])\n")
    server = ServerProcess(s, None, app.parent)  # started first: the app is bootstrapped later
    try:
        server.go(app)
        assert server.wait() == []
    finally:
        server.stop()
    assert (s.results_dir / "server-files" / "ran").read_text() == str(app.resolve() / "main.py")


def test_the_servers_quick_exit_still_waits_for_the_apps_threads_and_atexit_work(tmp_path):
    main_py = ("import atexit, pathlib, threading, time\n"
               "atexit.register(lambda: pathlib.Path('atexit').write_text('done'))\n"
               "def late():\n    time.sleep(0.5)\n    pathlib.Path('thread').write_text('done')\n"
               "threading.Thread(target=late).start()\n")
    s, app = fake_server(tmp_path, main_py)
    assert run_server(s, app, app.parent) == []
    collected = s.results_dir / "server-files"
    assert (collected / "thread").read_text() == "done" and (collected / "atexit").read_text() == "done"


def test_a_server_without_its_app_cannot_run_at_once_or_go_unnamed(tmp_path):
    s, app = fake_server(tmp_path, "print('ran')\n")
    with pytest.raises(ValueError, match="needs its app folder"):
        ServerProcess(s, None, app.parent, ahead=False)
    server = ServerProcess(s, None, app.parent)
    try:
        with pytest.raises(ValueError, match="needs the app folder"):
            server.go()
        assert not server.went and not server.go_file.exists()
    finally:
        server.stop()


def test_a_server_stopped_before_its_round_leaves_no_results(tmp_path):
    s, app = fake_server(tmp_path, "import pathlib\npathlib.Path('ran').write_text('yes')\n")
    server = ServerProcess(s, app, app.parent)
    server.stop()
    assert server.proc.returncode is not None
    assert not (s.results_dir / "server.log").exists() and not (s.results_dir / "server-files").exists()


def test_a_waiting_server_ends_when_the_run_that_started_it_is_gone(tmp_path):
    """A DS's run killed outright (SIGKILL) cannot stop its waiting server: the server ends itself."""
    s, app = fake_server(tmp_path, "print('ran')\n")
    pid_file = tmp_path / "server.pid"
    parent = (f"import pickle, sys\nfrom pathlib import Path\n"
              f"from federation.scientist.flower_server import ServerProcess\n"
              f"s = pickle.loads(bytes.fromhex({pickle.dumps(s).hex()!r}))\n"
              f"server = ServerProcess(s, Path({str(app)!r}), Path({str(app.parent)!r}))\n"
              f"Path({str(pid_file)!r}).write_text(str(server.proc.pid))\n")
    subprocess.run([sys.executable, "-c", parent], check=True, cwd=REPO_ROOT, timeout=60)
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 60
    while Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
        assert time.monotonic() < deadline, "the orphaned server still waits"
        time.sleep(0.2)
    assert "ran" not in (app.parent / "server.log").read_text()
