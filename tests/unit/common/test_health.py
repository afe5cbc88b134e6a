"""The healthcheck's state file: ready, failed, starting."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from federation.common import health

# =========================================================================== health


@pytest.fixture
def health_file(tmp_path, monkeypatch):
    path = tmp_path / "health.json"
    monkeypatch.setenv("HEALTH_FILE", str(path))
    return path


def test_health_ready(health_file, capsys):
    health.report("ready", "serving pima-indians-diabetes-database")
    assert json.loads(health_file.read_text())["state"] == "ready"
    assert health.check() == 0
    assert capsys.readouterr().out.strip() == "ready: serving pima-indians-diabetes-database"


def test_health_ready_without_detail(health_file, capsys):
    health.report("ready")
    assert health.check() == 0
    assert capsys.readouterr().out.strip() == "ready"


@pytest.mark.parametrize("state,detail", [
    ("failed", "dataset not published: b.csv: column Outcome, line 3: '7' is not 0 or 1"),
    ("starting", ""),
])
def test_health_not_ready(health_file, capsys, state, detail):
    health.report(state, detail)
    assert health.check() == 1
    out = capsys.readouterr().out
    assert state in out and detail in out


def test_health_latest_report_wins(health_file, capsys):
    health.report("ready", "ok")
    health.report("failed", "sync client died")
    assert health.check() == 1
    assert "failed: sync client died" in capsys.readouterr().out
    assert not list(health_file.parent.glob("*.tmp"))


def test_health_without_a_file_or_with_garbage(health_file, capsys):
    assert health.check() == 1
    assert "starting" in capsys.readouterr().out
    health_file.write_text("{not json")
    assert health.check() == 1
    assert "starting" in capsys.readouterr().out


# ====================================================== the containers' healthcheck

COMPOSE = Path(__file__).resolve().parents[3] / "compose.yaml"
DOCKERFILE = COMPOSE.parent / "docker" / "Dockerfile"


def compose_healthcheck(health_file) -> subprocess.CompletedProcess:
    """compose.yaml's healthcheck command, run as Docker runs it (`sh -c`, `$$` is compose's `$`)."""
    kind, command = yaml.safe_load(COMPOSE.read_text())["x-healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    return subprocess.run(["sh", "-c", command.replace("$$", "$")], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HEALTH_FILE": str(health_file)})


def test_compose_healthcheck_reads_the_state_the_role_reports(health_file):
    """The shell check agrees with `federation health` on every state, and shows the state."""
    assert compose_healthcheck(health_file).returncode == 1  # nothing reported yet (Docker reserves 2)
    assert "starting" in compose_healthcheck(health_file).stdout
    for state, detail, healthy in [("starting", "", False), ("ready", "serving pima", True),
                                   ("failed", 'b.csv: "state": "ready" was a lie', False)]:
        health.report(state, detail)
        result = compose_healthcheck(health_file)
        assert result.returncode == (0 if healthy else 1) == health.check(), (state, result)
        assert json.loads(result.stdout)["state"] == state


def test_the_images_default_healthcheck_is_the_same_shell_read():
    """compose.do.yaml's owner (a hospital's own machine) takes the image's HEALTHCHECK: the same
    cheap read as compose.yaml's, not a Python start every 5 s."""
    _, command = yaml.safe_load(COMPOSE.read_text())["x-healthcheck"]["test"]
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    runtime = text.split("AS runtime", 1)[1].split("\nFROM ", 1)[0]
    (line,) = [l for l in runtime.splitlines() if l.startswith("HEALTHCHECK")]
    check = line.split(" CMD ", 1)[1]
    assert not check.startswith("[")  # the shell form: Docker runs it with sh -c
    assert " ".join(check.split()) == " ".join(command.replace("$$", "$").split())
