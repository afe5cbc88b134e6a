"""The DS's session with each owner: the dataset it publishes."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from federation.scientist.errors import WorkflowError
from federation.scientist.session import OwnerSession as Owner
from federation.scientist.session import dataset_check, synced_mock

A = "do1@openmined.org"

# ---------------------------------------------------------------- the dataset an owner publishes


def owner_with(names: list[str]) -> Owner:
    datasets = SimpleNamespace(get_all=lambda: [SimpleNamespace(name=n) for n in names])
    return Owner(A, session=SimpleNamespace(dataset=datasets))


def test_the_named_dataset_is_found():
    assert dataset_check("pima", owner_with(["cancer", "pima"]))() is True


def test_nothing_published_yet_keeps_waiting():
    check = dataset_check("pima", owner_with([]), grace=0)
    assert check() is False and check() is False


def test_other_datasets_but_never_ours_is_a_clear_error_after_the_grace():
    check = dataset_check("pima", owner_with(["cancer", "asthma"]), grace=0.05)
    assert check() is False  # could still be syncing
    time.sleep(0.1)
    with pytest.raises(WorkflowError, match=f"{A} has no dataset 'pima'; it publishes: asthma, cancer"):
        check()


class FakeSession:
    """A guest session whose dataset's mock folder is `mock` (None: not synced at all)."""

    def __init__(self, mock: Path | None, readme: str | None = None):
        self.dataset = self
        self.mock = mock
        self.readme = f"syft://do1@openmined.org/public/datasets/pima/{readme}" if readme else None

    def get(self, name: str):
        assert name == "pima"
        return self

    def get_mock_path(self) -> Path:
        if self.mock is None or not self.mock.exists():
            raise FileNotFoundError(f"Mock file not found at {self.mock}")
        return self.mock


def test_a_mock_counts_as_synced_once_a_file_of_its_own_is_there(tmp_path):
    mock = tmp_path / "mock"
    assert synced_mock(FakeSession(None), "pima") is None
    mock.mkdir()
    session = FakeSession(mock, readme="pima.md")
    assert synced_mock(session, "pima") is None  # the record synced before the files
    (mock / "pima.md").write_text("# pima\n")
    (mock / "part").mkdir()
    assert synced_mock(session, "pima") is None  # the dataset's README (it comes first), a folder
    (mock / "part" / "notes.txt").write_text("no CSV: an owner's own mock may hold any files\n")
    assert synced_mock(session, "pima") == mock


# ---------------------------------------------------------------- the job's status


def test_a_job_gone_from_the_owners_store_keeps_its_last_status():
    """An owner moves an ended job's record out of its synced tree (SYNCED_RETENTION): syft-rds's
    local read then finds nothing, and the DS keeps the status it saw last."""
    from federation.scientist.session import refresh

    records = {"status": SimpleNamespace(uid=SimpleNamespace(hex="ab" * 16), error_message=None,
                                         status=SimpleNamespace(value="job_run_finished"))}
    jobs = SimpleNamespace(get=lambda uid: records.get("status"))
    owner = Owner(A, session=SimpleNamespace(job=jobs), job=SimpleNamespace(uid=SimpleNamespace(hex="ab" * 16)),
                  status="job_in_progress")
    assert refresh(owner) == "job_run_finished"
    records.clear()
    assert refresh(owner) == "job_run_finished" and owner.status == "job_run_finished"
