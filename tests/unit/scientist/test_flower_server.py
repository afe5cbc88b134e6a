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
    with pytest.raises(WorkflowError, match=r"Flower server exited with 3:\nfed_app server: round 1: wrote x"):
        run_server(s, app, app.parent, lambda done, total: rounds.append((done, total)))
    assert rounds[-1] == (1, 1)
