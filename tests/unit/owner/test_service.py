"""Which datasets an owner publishes: its dataset folders, and the Pima demo share beside them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from federation.common.settings import OwnerSettings, Party, Policy
from federation.owner.data import DatasetError
from federation.owner.service import datasets


def owner_settings(tmp_path: Path, pima_csv: Path, demo=(1, 2)) -> OwnerSettings:
    return OwnerSettings(party=Party("do1@x.org", None, tmp_path / "home"), datasets_dir=tmp_path / "datasets",
                         pima_csv=pima_csv, pima_url="file:///nowhere", demo_partition=demo,
                         policy=Policy(allowlist=("ds@x.org",)), mock_rows=10, job_timeout=60)


def test_a_demo_owner_serves_its_datasets_and_the_pima_share(tmp_path, pima_csv):
    (tmp_path / "datasets" / "vitals" / "private").mkdir(parents=True)
    (tmp_path / "datasets" / "vitals" / "private" / "train.csv").write_text("a,y\n1,0\n2,1\n")
    found = datasets(owner_settings(tmp_path, pima_csv))
    assert [d.name for d in found] == ["vitals", "pima-indians-diabetes-database"]
    assert found[1].rows == 384 and found[1].private_dir == tmp_path / "home" / "demo" / "private"


def test_a_folder_named_as_the_demo_replaces_the_demo_share(tmp_path, pima_csv):
    mine = tmp_path / "datasets" / "pima-indians-diabetes-database" / "private"
    mine.mkdir(parents=True)
    (mine / "ward.csv").write_text("\n".join(pima_csv.read_text().splitlines()[:31]) + "\n")
    [only] = datasets(owner_settings(tmp_path, pima_csv))
    assert only.private_dir == mine and only.rows == 30
    assert only.made_mock == tmp_path / "home" / "mocks" / "pima-indians-diabetes-database"
    assert (only.made_mock / "ward.csv").is_file()  # made before the owner goes online


def test_without_the_public_file_an_owner_with_its_own_data_serves_that(tmp_path, pima_csv):
    (tmp_path / "datasets" / "vitals" / "private").mkdir(parents=True)
    (tmp_path / "datasets" / "vitals" / "private" / "train.csv").write_text("a,y\n1,0\n2,1\n3,0\n")
    settings = replace(owner_settings(tmp_path, tmp_path / "no-such.csv"), pima_url="file:///no/such/file.csv")
    assert [d.name for d in datasets(settings)] == ["vitals"]
    with pytest.raises(DatasetError, match="the public Pima file .* could not be downloaded"):
        datasets(replace(settings, datasets_dir=tmp_path / "none"))


def test_no_dataset_and_no_demo_is_one_clear_error(tmp_path, pima_csv):
    with pytest.raises(DatasetError, match=r"no dataset: put one in .*datasets/<name>/private/"):
        datasets(owner_settings(tmp_path, pima_csv, demo=None))


def test_a_bad_dataset_stops_the_owner_naming_it(tmp_path, pima_csv):
    (tmp_path / "datasets" / "broken").mkdir(parents=True)
    settings = replace(owner_settings(tmp_path, pima_csv), demo_partition=None)
    with pytest.raises(DatasetError, match="dataset broken: no private/ folder"):
        datasets(settings)
