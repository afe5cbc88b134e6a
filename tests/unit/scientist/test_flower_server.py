"""The Flower server's outcome, read from its exit code and log."""

from __future__ import annotations

from pathlib import Path

import pytest

from federation.common.settings import ScientistSettings
from federation.scientist.errors import WorkflowError
from federation.scientist.flower_server import run_server
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
