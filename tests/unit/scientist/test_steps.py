"""The DS's steps: who replied, the mock preview."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from federation.common.settings import ScientistSettings
from federation.scientist.errors import WorkflowError
from federation.scientist.replies import Round
from federation.scientist.steps import check_app, check_replies, preview_module, read_aggregate
from tests.conftest import REPO_ROOT
from tests.unit.fakes import scientist_settings

# =========================================================================== scientist


DATASITES = ["do1@openmined.org", "do2@openmined.org"]


def ds_settings(tmp_path: Path, datasites=DATASITES) -> ScientistSettings:
    return scientist_settings(tmp_path, datasites)


def rounds(*rounds: dict) -> list[Round]:
    """Rounds as the message log gives them: asked, replied, errors per round."""
    return [Round(i, list(r.get("asked", DATASITES)), list(r.get("replied", [])), dict(r.get("errors", {})))
            for i, r in enumerate(rounds, start=1)]


def test_check_replies_fails_below_the_minimum_naming_who_did_not_answer_and_why(tmp_path):
    s = ds_settings(tmp_path)  # MIN_REPLIES defaults to every owner
    with pytest.raises(WorkflowError, match=r"only 0 of 2 owners replied, 2 needed \(MIN_REPLIES\); round 1: "
                                            r"do1@openmined.org answered with an error: reply refused, "
                                            r"no reply from do2@openmined.org$"):
        check_replies(s, rounds({"errors": {"do1@openmined.org": "reply refused"}}))


def test_check_replies_at_the_minimum_counts_and_lists_who_is_missing(tmp_path):
    s = replace(ds_settings(tmp_path, DATASITES + ["do3@openmined.org"]), min_replies=2)
    got = check_replies(s, rounds({"asked": s.datasites, "replied": ["do3@openmined.org", "do1@openmined.org"]}))
    assert got == (["do1@openmined.org", "do3@openmined.org"], ["do2@openmined.org"])


def test_an_owner_counts_only_if_it_replied_in_every_round_that_asked_it(tmp_path):
    s = replace(ds_settings(tmp_path), min_replies=1)
    got = check_replies(s, rounds({"replied": DATASITES}, {"replied": ["do2@openmined.org"]}))
    assert got == (["do2@openmined.org"], ["do1@openmined.org"])


def test_check_replies_all_present(tmp_path):
    s = ds_settings(tmp_path)
    assert check_replies(s, rounds({"replied": list(reversed(DATASITES))})) == (DATASITES, [])


def test_check_replies_without_any_round_says_the_server_asked_nobody(tmp_path):
    with pytest.raises(WorkflowError, match="sent no question to any owner"):
        check_replies(ds_settings(tmp_path), [])


def test_the_aggregate_is_read_when_the_app_wrote_one(tmp_path):
    s = ds_settings(tmp_path)
    assert read_aggregate(s) is None
    s.results_dir.mkdir(parents=True, exist_ok=True)
    (s.results_dir / "aggregate.json").write_text(json.dumps({"replied": 2}))
    assert read_aggregate(s) == {"replied": 2}


def test_only_an_app_with_a_preview_module_gets_a_mock_preview(tmp_path):
    assert preview_module(REPO_ROOT / "fed_app") == "fed_app.preview"
    assert preview_module(REPO_ROOT / "examples" / "moments") is None
    assert preview_module(tmp_path) is None  # no pyproject.toml


def test_the_mock_preview_runs_below_the_runs_priority(tmp_path, monkeypatch):
    """The preview shares the CPU with the owners' jobs as they end: it runs PREVIEW_NICE lower."""
    import os

    from federation.scientist import steps

    app = tmp_path / "app"
    (app / "probe").mkdir(parents=True)
    (app / "pyproject.toml").write_text('[tool.flwr.app.components]\nserverapp = "probe.server_app:app"\n')
    (app / "probe" / "__init__.py").write_text("")
    (app / "probe" / "preview.py").write_text(
        "import os, pathlib, sys\npathlib.Path(sys.argv[1]).mkdir(parents=True)\n"
        "pathlib.Path(sys.argv[1], 'nice').write_text(str(os.nice(0)))\n")
    s = replace(ds_settings(tmp_path), fed_app=app)
    s.party.state_dir.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(steps, "mock_dirs", lambda settings, owners: [])
    steps.finish_mock_preview(steps.start_mock_preview(s, []), s)
    assert int((s.results_dir / "mock" / "nice").read_text()) == min(19, os.nice(0) + steps.PREVIEW_NICE)


def test_a_mock_preview_that_outlasts_its_wait_is_stopped_and_the_run_goes_on(tmp_path, caplog):
    import subprocess
    import sys

    from federation.scientist import steps

    s = ds_settings(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    steps.finish_mock_preview(proc, s, timeout=0.2)  # no exception: the run still counts
    assert proc.returncode is not None and proc.returncode != 0
    assert "no mock preview" in caplog.text


def test_check_app_names_what_is_not_a_flower_app(tmp_path):
    check_app(REPO_ROOT / "examples" / "moments")
    with pytest.raises(WorkflowError, match="has no pyproject.toml"):
        check_app(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    with pytest.raises(WorkflowError, match="no \\[tool.flwr.app.components\\] serverapp and clientapp"):
        check_app(tmp_path)


# ---------------------------------------------------------------- the mock preview


def test_preview_writes_the_same_aggregate_the_server_writes(pima_csv, tmp_path):
    import pandas as pd
    from fed_app.preview import preview

    folders = []
    whole = pd.read_csv(pima_csv)
    for i, part in enumerate((whole.iloc[:100], whole.iloc[100:130])):
        folders.append(tmp_path / f"mock{i}")
        folders[-1].mkdir()
        part.to_csv(folders[-1] / "mock.csv", index=False)
    out = tmp_path / "out"
    result = preview(out, folders, "pima")
    saved = json.loads((out / "aggregate.json").read_text())
    assert saved == json.loads(json.dumps(result))
    age = saved["features"]["Age"]["by_outcome"]
    assert age["0"]["count"] + age["1"]["count"] == 130
    assert age["1"]["count"] == int((whole.iloc[:130]["Outcome"] == 1).sum())
    assert sorted(p.stem for p in (out / "figures").glob("*.png")) == sorted(saved["features"])


