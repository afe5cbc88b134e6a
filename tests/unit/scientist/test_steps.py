"""The DS's steps: who replied, the mock preview."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from federation.common.settings import ScientistSettings
from federation.scientist.errors import WorkflowError
from federation.scientist.steps import check_replies
from tests.unit.fakes import scientist_settings

# =========================================================================== scientist


DATASITES = ["do1@openmined.org", "do2@openmined.org"]


def ds_settings(tmp_path: Path, datasites=DATASITES) -> ScientistSettings:
    return scientist_settings(tmp_path, datasites)


def write_aggregate(s: ScientistSettings, aggregate: dict) -> None:
    (s.results_dir / "aggregate.json").write_text(json.dumps(aggregate))


def test_check_replies_fails_below_the_minimum_naming_the_missing_owner(tmp_path):
    s = ds_settings(tmp_path)  # MIN_REPLIES defaults to every owner
    write_aggregate(s, {"datasites": ["do1@openmined.org"], "n": 384})
    with pytest.raises(WorkflowError, match=r"only 1 of 2 owners replied, 2 needed \(MIN_REPLIES\); "
                                            r"no reply from do2@openmined.org$"):
        check_replies(s)


def test_check_replies_at_the_minimum_counts_and_lists_who_is_missing(tmp_path):
    s = replace(ds_settings(tmp_path, DATASITES + ["do3@openmined.org"]), min_replies=2)
    aggregate = {"datasites": ["do3@openmined.org", "do1@openmined.org"], "features": {}}
    write_aggregate(s, aggregate)
    assert check_replies(s) == (aggregate, ["do2@openmined.org"])


def test_check_replies_no_datasites_key_names_everyone(tmp_path):
    s = ds_settings(tmp_path)
    write_aggregate(s, {"n": 0})
    with pytest.raises(WorkflowError) as info:
        check_replies(s)
    assert all(e in str(info.value) for e in DATASITES)


def test_check_replies_all_present_returns_the_aggregate(tmp_path):
    s = ds_settings(tmp_path)
    aggregate = {"datasites": list(reversed(DATASITES)) + ["extra@openmined.org"], "features": {"BMI": [1, 2]}}
    write_aggregate(s, aggregate)
    assert check_replies(s) == (aggregate, [])


def test_check_replies_without_a_file(tmp_path):
    s = ds_settings(tmp_path)
    with pytest.raises(WorkflowError) as info:
        check_replies(s)
    assert "aggregate.json" in str(info.value)


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


